"""The reference deploy: the pinned wrangler (4.124.0) deploys `worker/` with its container
against the fake Cloudflare API (tests/infra/cf_api.py) and a real local registry.

What wrangler sends, in order (`request_sequence`; {account}, {script}, {bucket}, {version},
{registry} stand for the ids), measured by this module's tests:

First deploy on a fresh account (20 requests, 7 of them mutating):
     1 GET   /accounts/{account}/workers/services/{script}            404 10007: a new Worker
     2 GET   /accounts/{account}/workers/scripts/{script}/secrets     404 (secrets-override check)
     3 GET   /accounts/{account}/workers/subdomain                    the account's workers.dev
     4 GET   /accounts/{account}/workers/scripts/{script}/deployments 404 (overwrite check)
     5 GET   /accounts/{account}/workers/services/{script}            404 (migration tag look-up)
     6 POST  /accounts/{account}/workers/scripts/{script}/assets-upload-session
     7 POST  /accounts/{account}/workers/assets/upload?base64=true    (session JWT, not the token)
     8 GET   /accounts/{account}/workers/scripts/{script}/settings    404 (existing bindings)
     9 GET   /accounts/{account}/r2/buckets/{bucket}                  404
    10 GET   /accounts/{account}/r2/buckets
    11 POST  /accounts/{account}/r2/buckets                           wrangler creates the bucket
    12 PUT   /accounts/{account}/workers/scripts/{script}?excludeScript=true&bindings_inherit=strict
             multipart; metadata: main_module, bindings, containers [{class_name: Sandbox}],
             migrations {new_tag: v1, steps: [{new_sqlite_classes: [Sandbox]}]}, assets {jwt,
             config}, compatibility_date, observability. The answer's deployment_id is taken as
             the version id.
    13 GET   /accounts/{account}/containers/me                        limits for the image check
    14 POST  /accounts/{account}/containers/registries/{registry}/credentials  then `docker login`
    15 GET   /accounts/{account}/workers/scripts/{script}/versions/{version}   the namespace_id
    16 GET   /accounts/{account}/containers/applications
    17 POST  /accounts/{account}/containers/applications              image by digest, bound to
             durable_objects.namespace_id
    18 GET   /accounts/{account}/workers/subdomain
    19 GET   /accounts/{account}/workers/scripts/{script}/subdomain
    20 POST  /accounts/{account}/workers/scripts/{script}/subdomain   {enabled, previews_enabled}
  Between 14 and 15 the image is built, pushed to the registry and its pushed digest read back.

Second deploy, nothing changed (14 requests, 4 of them mutating): wrangler itself is not
idempotent. It re-sends 1, 2, 4, 5, 6 (a new assets session; nothing to upload), 8, then
PUT the script again (a new version and deployment, no `migrations`: the tag is current), 13,
14 (fresh registry credentials), 15, 16, 18, 19 and POST the subdomain again. The image is
rebuilt from the layer cache and not pushed ("Image already exists remotely, skipping push"),
and the container application is left alone ("no changes": no PATCH, no rollout).

Refusals (asserted once, in test_deploy_rehearsal.py, where wrangler runs under our deploy
path): a bad token ends the deploy at request 1 (401, wrangler shows "Unable to authenticate
request [code: 10001]"); a token without Workers permission at request 1 (403, then GET
/user/tokens/verify, /user, /memberships, /accounts to say whose token it is); a token without
Containers permission uploads the Worker and then fails at 13 (403), leaving a deployed script
with no container application; GET requests are not retried on 429 (the deploy stops), the
script upload is retried twice honouring Retry-After and then fails.

The reference deploy itself (the real sandbox image, built and pushed once per session) is the
session fixture `reference_deploy` in tests/infra/conftest.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.cf_api import CloudflareApiServer
from tests.infra.wrangler_ref import REFERENCE_SCRIPT, LocalRegistry, WranglerRun, request_sequence

# The module's fixture builds (or finds) the image and deploys twice.
pytestmark = pytest.mark.timeout(900)

SCRIPT = REFERENCE_SCRIPT
APP = f"{SCRIPT}-sandbox"  # wrangler's default application name: <worker>-<class, lower case>

FIRST_DEPLOY = [
    "GET /accounts/{account}/workers/services/{script}",
    "GET /accounts/{account}/workers/scripts/{script}/secrets",
    "GET /accounts/{account}/workers/subdomain",
    "GET /accounts/{account}/workers/scripts/{script}/deployments",
    "GET /accounts/{account}/workers/services/{script}",
    "POST /accounts/{account}/workers/scripts/{script}/assets-upload-session",
    "POST /accounts/{account}/workers/assets/upload?base64=true",
    "GET /accounts/{account}/workers/scripts/{script}/settings",
    "GET /accounts/{account}/r2/buckets/{bucket}",
    "GET /accounts/{account}/r2/buckets",
    "POST /accounts/{account}/r2/buckets",
    "PUT /accounts/{account}/workers/scripts/{script}?excludeScript=true&bindings_inherit=strict",
    "GET /accounts/{account}/containers/me",
    "POST /accounts/{account}/containers/registries/{registry}/credentials",
    "GET /accounts/{account}/workers/scripts/{script}/versions/{version}",
    "GET /accounts/{account}/containers/applications",
    "POST /accounts/{account}/containers/applications",
    "GET /accounts/{account}/workers/subdomain",
    "GET /accounts/{account}/workers/scripts/{script}/subdomain",
    "POST /accounts/{account}/workers/scripts/{script}/subdomain",
]
SECOND_DEPLOY = [
    "GET /accounts/{account}/workers/services/{script}",
    "GET /accounts/{account}/workers/scripts/{script}/secrets",
    "GET /accounts/{account}/workers/scripts/{script}/deployments",
    "GET /accounts/{account}/workers/services/{script}",
    "POST /accounts/{account}/workers/scripts/{script}/assets-upload-session",
    "GET /accounts/{account}/workers/scripts/{script}/settings",
    "PUT /accounts/{account}/workers/scripts/{script}?excludeScript=true&bindings_inherit=strict",
    "GET /accounts/{account}/containers/me",
    "POST /accounts/{account}/containers/registries/{registry}/credentials",
    "GET /accounts/{account}/workers/scripts/{script}/versions/{version}",
    "GET /accounts/{account}/containers/applications",
    "GET /accounts/{account}/workers/subdomain",
    "GET /accounts/{account}/workers/scripts/{script}/subdomain",
    "POST /accounts/{account}/workers/scripts/{script}/subdomain",
]


@pytest.fixture
def reference(
    reference_deploy: tuple[CloudflareApiServer, WranglerRun, WranglerRun],
) -> tuple[CloudflareApiServer, WranglerRun, WranglerRun]:
    return reference_deploy


def test_first_deploy_leaves_the_worker_its_namespace_and_one_application(
    reference: tuple[CloudflareApiServer, WranglerRun, WranglerRun],
    local_registry: LocalRegistry,
) -> None:
    server, first, _ = reference
    script = first.end_state["scripts"][SCRIPT]
    assert script["main_module"] == "index.js"
    assert {(b["name"], b["type"]) for b in script["bindings"]} == {
        ("ASSETS", "assets"),
        ("BROWSER", "browser"),
        ("DATA", "r2_bucket"),
        ("DEBUG_ROUTES", "plain_text"),
        ("SANDBOX", "durable_object_namespace"),
        ("SLEEP_AFTER", "plain_text"),
    }
    assert script["containers"] == [{"class_name": "Sandbox"}]
    assert script["migration_tag"] == "v1" and script["sqlite_classes"] == ["Sandbox"]
    assert script["compatibility_date"] == "2026-08-15"
    assert script["assets"] is not None
    assert "/_admin/index.html" in script["assets"]["files"]
    assert script["assets"]["config"]["run_worker_first"] is True
    assert first.end_state["buckets"] == [f"{SCRIPT}-data"]

    (app,) = server.api.apps.values()
    assert app["name"] == APP
    assert app["configuration"]["instance_type"] == "standard-1"
    assert app["max_instances"] == 1
    (namespace,) = server.api.namespaces.values()
    assert (namespace["script"], namespace["class"], namespace["use_sqlite"]) == (
        SCRIPT,
        "Sandbox",
        True,
    )
    assert app["durable_objects"] == {"namespace_id": namespace["id"]}

    image = app["configuration"]["image"]
    repository = f"{server.api.account_id}/{APP}"
    match = re.fullmatch(
        rf"{re.escape(local_registry.host)}/{repository}@(sha256:[0-9a-f]{{64}})", image
    )
    assert match, f"the application's image is not <registry>/<account>/<repo>@sha256: {image}"
    assert local_registry.manifest_digest(repository, match.group(1)) == match.group(1)


def test_first_deploy_request_sequence_and_upload(
    reference: tuple[CloudflareApiServer, WranglerRun, WranglerRun],
) -> None:
    server, first, _ = reference
    assert request_sequence(first, server, SCRIPT) == FIRST_DEPLOY
    assert [r.status for r in first.requests].count(404) == 6
    assert len(first.mutating) == 7
    (upload,) = [r for r in first.requests if r.method == "PUT"]
    metadata = upload.metadata
    assert metadata is not None
    assert metadata["main_module"] == "index.js"
    assert [c["class_name"] for c in metadata["containers"]] == ["Sandbox"]
    assert metadata["migrations"] == {
        "new_tag": "v1",
        "steps": [{"new_sqlite_classes": ["Sandbox"]}],
    }
    assert "exports" not in metadata
    (create,) = [
        r for r in first.requests if r.method == "POST" and r.path.endswith("/applications")
    ]
    body: dict[str, Any] = create.body
    assert body["durable_objects"] == {"namespace_id": next(iter(server.api.namespaces))}
    assert set(body) >= {"name", "scheduling_policy", "configuration", "instances", "max_instances"}
    assert body["instances"] == 0 and body["scheduling_policy"] == "default"


def test_a_second_identical_deploy_uploads_again_but_leaves_the_application(
    reference: tuple[CloudflareApiServer, WranglerRun, WranglerRun],
) -> None:
    server, first, second = reference
    mutating = [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in second.mutating]
    (upload,) = [r for r in second.requests if r.method == "PUT"]
    assert upload.metadata is not None and "migrations" not in upload.metadata
    assert len(server.api.scripts[SCRIPT].deployments) == 2  # a new version each time
    assert second.end_state["scripts"] == first.end_state["scripts"]
    image = first.end_state["applications"][APP]["image"]
    if second.end_state["applications"][APP]["image"] == image:
        assert request_sequence(second, server, SCRIPT) == SECOND_DEPLOY
        assert mutating == [
            "POST assets-upload-session",
            f"PUT {SCRIPT}",
            "POST credentials",
            "POST subdomain",
        ]
        assert "Image already exists remotely, skipping push" in second.output
        assert server.api.rollouts == []
        assert second.end_state == first.end_state
    else:
        # podman's layer cache held more than one build of a step (a shared store where the
        # image was rebuilt in between): the same Dockerfile gave another image. wrangler then
        # pushes it and rolls the application out to the new digest, nothing else.
        app_id = next(iter(server.api.apps))
        expected = list(SECOND_DEPLOY)
        expected[11:11] = [
            f"PATCH /accounts/{{account}}/containers/applications/{app_id}",
            f"POST /accounts/{{account}}/containers/applications/{app_id}/rollouts",
        ]
        assert request_sequence(second, server, SCRIPT) == expected
        (rollout,) = server.api.rollouts
        assert rollout["request"]["target_configuration"]["image"] != image
