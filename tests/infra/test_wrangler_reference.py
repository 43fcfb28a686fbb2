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

Refusals: a bad token ends the deploy at request 1 (401, wrangler shows "Unable to
authenticate request [code: 10001]"); a token without Workers permission at request 1 (403,
then GET /user/tokens/verify, /user, /memberships, /accounts to say whose token it is);
a token without Containers permission uploads the Worker and then fails at 13 (403), leaving
a deployed script with no container application; GET requests are not retried on 429 (the
deploy stops), the script upload is retried twice honouring Retry-After and then fails.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.images import base_image, sandbox_image
from infra.build import image_build_args
from tests.infra.cf_api import CloudflareApi, CloudflareApiServer
from tests.infra.wrangler_ref import (
    CONTAINER,
    LocalRegistry,
    WranglerRun,
    reference_config,
    request_sequence,
    run_deploy,
)

# The module's fixture builds (or finds) the image and deploys twice.
pytestmark = pytest.mark.timeout(900)

SCRIPT = "moltworker-ref"
DOCKERIGNORED = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")  # container/.dockerignore
APP = f"{SCRIPT}-sandbox"  # wrangler's default application name: <worker>-<class, lower case>

# What wrangler asks after a 403 to say whose token it is.
WHOAMI = {"/user/tokens/verify", "/user", "/memberships", "/accounts"}

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


@pytest.fixture(scope="module")
def container_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """container/ as it is now: both deploys build the same context even while it is edited."""
    copy = tmp_path_factory.mktemp("context") / "container"
    shutil.copytree(CONTAINER, copy, ignore=shutil.ignore_patterns(*DOCKERIGNORED))
    return copy


@pytest.fixture(scope="module")
def image_vars(container_copy: Path) -> dict[str, str]:
    """The build arguments the local sandbox build uses, so wrangler's build of the same
    Dockerfile is answered from podman's layer cache (devstack.images builds it once)."""
    base = base_image()
    sandbox_image(base=base)
    version = (container_copy / "openclaw.version").read_text().strip()
    return {**image_build_args(version), "BASE_IMAGE": base}


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A one-layer image on the same base, for runs whose point is the API flow, not the
    sandbox: its build and push take a second instead of the sandbox's half minute."""
    context = tmp_path_factory.mktemp("small-image")
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nEXPOSE 8080\n")
    return context / "Dockerfile", {"BASE_IMAGE": base_image()}


def new_server(registry: LocalRegistry) -> CloudflareApiServer:
    api = CloudflareApi(registry_login=(registry.username, registry.password))
    return CloudflareApiServer(api).start()


@pytest.fixture(scope="module")
def reference(
    local_registry: LocalRegistry,
    image_vars: dict[str, str],
    container_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CloudflareApiServer, WranglerRun, WranglerRun]]:
    server = new_server(local_registry)
    work = tmp_path_factory.mktemp("wrangler-ref")
    config = reference_config(
        SCRIPT, image_vars=image_vars, dockerfile=container_copy / "Dockerfile"
    )
    try:
        first = run_deploy(server, local_registry, work / "first", config)
        assert first.returncode == 0, first.output
        second = run_deploy(server, local_registry, work / "second", config)
        assert second.returncode == 0, second.output
        yield server, first, second
    finally:
        server.stop()


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


def test_a_bad_token_stops_at_the_first_request(
    local_registry: LocalRegistry, image_vars: dict[str, str], tmp_path: Path
) -> None:
    server = new_server(local_registry)
    try:
        token = "not-the-account-token-0123456789"
        config = reference_config(SCRIPT, image_vars=image_vars)
        run = run_deploy(server, local_registry, tmp_path / "run", config, token=token)
    finally:
        server.stop()
    assert run.returncode != 0
    assert [r.status for r in run.requests] == [401]
    assert "Unable to authenticate request [code: 10001]" in run.output
    assert token not in run.output
    assert run.end_state["scripts"] == {} and run.end_state["applications"] == {}


def test_a_token_without_workers_permission_stops_at_the_first_request(
    local_registry: LocalRegistry, image_vars: dict[str, str], tmp_path: Path
) -> None:
    server = new_server(local_registry)
    server.api.revoke("workers")
    try:
        run = run_deploy(
            server,
            local_registry,
            tmp_path / "run",
            reference_config(SCRIPT, image_vars=image_vars),
        )
    finally:
        server.stop()
    assert run.returncode != 0
    assert run.requests[0].status == 403 and run.requests[0].path.endswith(f"/services/{SCRIPT}")
    # Then wrangler asks who the token belongs to, to print it; it changes nothing.
    assert {r.path.removeprefix("/client/v4") for r in run.requests[1:]} <= WHOAMI
    assert run.mutating == []
    assert "Authentication error [code: 10000]" in run.output
    assert run.end_state["scripts"] == {}


def test_a_token_without_containers_permission_leaves_a_worker_without_its_application(
    local_registry: LocalRegistry, image_vars: dict[str, str], tmp_path: Path
) -> None:
    server = new_server(local_registry)
    server.api.revoke("containers")
    try:
        run = run_deploy(
            server,
            local_registry,
            tmp_path / "run",
            reference_config(SCRIPT, image_vars=image_vars),
        )
    finally:
        server.stop()
    assert run.returncode != 0
    failed = [r for r in run.requests if r.status == 403]
    assert failed[0].path.endswith("/containers/me")
    assert not [r for r in run.mutating if "/containers/" in r.path]
    assert SCRIPT in run.end_state["scripts"]  # the upload went through before the image step
    assert run.end_state["applications"] == {}


def test_429_on_the_upload_is_retried_honouring_retry_after_then_a_storm_fails(
    local_registry: LocalRegistry, small_image: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    dockerfile, image_vars = small_image
    config = reference_config(SCRIPT, image_vars=image_vars, dockerfile=dockerfile)
    upload = r"/workers/scripts/[^/]+$"
    rate_limited = {
        "code": 971,
        "message": "Please wait and consider throttling your request speed",
    }
    server = new_server(local_registry)
    try:
        server.api.fail("PUT", upload, 429, times=2, headers={"Retry-After": "1"}, **rate_limited)
        recovered = run_deploy(server, local_registry, tmp_path / "recovered", config)
    finally:
        server.stop()
    assert recovered.returncode == 0, recovered.output
    assert [r.status for r in recovered.requests if r.method == "PUT"] == [429, 429, 200]
    assert recovered.output.count('Received a "Retry-After" header') == 2
    assert APP in recovered.end_state["applications"]

    server = new_server(local_registry)
    try:
        server.api.fail("PUT", upload, 429, times=99, headers={"Retry-After": "1"}, **rate_limited)
        storm = run_deploy(server, local_registry, tmp_path / "storm", config)
    finally:
        server.stop()
    assert storm.returncode != 0
    assert [r.status for r in storm.requests if r.method == "PUT"] == [429, 429, 429]
    assert storm.end_state["scripts"] == {} and storm.end_state["applications"] == {}
    # The bucket was created before the upload: a failed first deploy is not all-or-nothing.
    assert storm.end_state["buckets"] == [f"{SCRIPT}-data"]

    server = new_server(local_registry)
    try:
        server.api.fail("GET", r"/workers/services/", 429, times=1, headers={"Retry-After": "1"})
        read = run_deploy(server, local_registry, tmp_path / "read", config)
    finally:
        server.stop()
    assert read.returncode != 0
    assert read.requests[0].status == 429 and read.mutating == []
