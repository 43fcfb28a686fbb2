"""Our deploy path (the WorkerDeploy provider driving the pinned wrangler) rehearsed against the
fake Cloudflare API (tests/infra/cf_api.py) and a real local OCI registry, next to plain
`wrangler deploy` of the same Worker (tests/infra/wrangler_ref.py): the same end state, nothing
sent when nothing changed, one rollout per image change, one secret per rotation, the API's
refusals of the old versions-API path, and the token failures.

The Pulumi engine cannot run here, so the provider's check/diff/create/update/read/delete are
called the way the engine calls them, with the inputs the real `Worker` component registers
(recorded under mocks) for the real `worker/` bundle and a small image build context on the
Debian-made stand-in base (devstack.images.base_image()).

    .cache/venv/bin/python -m pytest tests/infra/test_deploy_rehearsal.py -s   # prints counts
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest

from devstack.images import base_image
from infra import build
from infra.dynamic import worker_deploy as wd
from infra.sandbox import SandboxArgs, sandbox_container
from infra.worker import Worker, WorkerArgs
from tests.infra.cf_api import CloudflareApiServer, Recorded
from tests.infra.harness import run_under_mocks, unwrap
from tests.infra.wrangler_ref import (
    LocalRegistry,
    WranglerRun,
    node_bin_dir,
    reference_config,
    run_deploy,
    wrangler_env,
)

pytestmark = pytest.mark.timeout(900)
ROOT = build.ROOT
SCRIPT = "moltworker-rehearsal"
SECRETS = {
    "OPENCLAW_GATEWAY_TOKEN": "gateway-token-value-0123456789abcdef",
    "MOLT_CONTROL_SECRET": "control-secret-value-0123456789abcdef",
    "ANTHROPIC_API_KEY": "sk-ant-rehearsal-key-0123456789abcdef",
}
VARS = {"SLEEP_AFTER": "10m", "DEBUG_ROUTES": "false", "MODEL_PRIMARY": "anthropic/claude"}
ZONE = "1" * 32  # what worker_props gives as the zone id of a custom domain
DOMAIN = "agent.example.com"
DIGEST_REF = re.compile(r"^127\.0\.0\.1:\d+/[0-9a-f]{32}/[a-z0-9-]+@sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def base() -> str:
    return base_image()


@pytest.fixture(scope="module")
def bundle() -> Iterator[build.WorkerBundle]:
    # wrangler bundles on the bootstrap's Node 24 (the system's may be older).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{node_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
        yield build.worker_bundle(ROOT / "worker")


def image_context(root: Path, marker: str) -> Path:
    """A small build context on the stand-in base: what changes the image is `marker`."""
    context = root / "image"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG OPENCLAW_VERSION\n"
        'LABEL org.openclaw.version="${OPENCLAW_VERSION}"\nCOPY marker /marker\n'
    )
    (context / "marker").write_text(marker)
    return context


def worker_props(
    bundle: build.WorkerBundle,
    context: Path,
    base: str,
    api: Any,
    *,
    secrets: dict[str, str] | None = None,
    instance_type: str = "standard-1",
    cron: str = "*/5 * * * *",
    custom_domain: str = "",
) -> dict[str, Any]:
    """The inputs the real Worker component registers for these settings (check not yet run)."""
    container = sandbox_container(
        SandboxArgs(
            app_name=SCRIPT,
            context_dir=context,
            openclaw_version="2026.9.6",
            instance_type=instance_type,
            build_args={"BASE_IMAGE": base},
        )
    )
    args = WorkerArgs(
        account_id=api.account_id,
        script_name=SCRIPT,
        bundle=bundle,
        worker_dir=ROOT / "worker",
        assets_dir=ROOT / "worker" / "public",
        bucket_name=f"{SCRIPT}-data",
        hostname=custom_domain or f"{SCRIPT}.alice.workers.dev",
        container=container,
        api_token=api.token,
        secrets=dict(secrets if secrets is not None else SECRETS),
        vars=dict(VARS),
        custom_domain=custom_domain,
        zone_id="1" * 32 if custom_domain else "",
        cron=cron,
    )
    resources, _, _ = run_under_mocks(lambda: Worker("worker", args))
    (deploy,) = [r for r in resources if r.custom]
    props = unwrap(deploy.inputs)
    props.pop("__provider")
    return props


@dataclass
class Engine:
    """Calls the provider the way the Pulumi engine does, and keeps the resource's state."""

    provider: wd.WorkerDeployProvider
    server: CloudflareApiServer
    id: str = ""
    state: dict[str, Any] | None = None

    def check(self, props: dict[str, Any]) -> dict[str, Any]:
        result = self.provider.check(self.state or {}, props)
        assert result.failures == [], [f"{f.property}: {f.reason}" for f in result.failures]
        return result.inputs

    def up(self, props: dict[str, Any]) -> tuple[str, list[Recorded]]:
        """One `pulumi up` of this resource: 'create', 'same' or 'update', and its requests."""
        mark = self.server.api.mark()
        news = self.check(props)
        if self.state is None:
            created = self.provider.create(news)
            self.id, self.state, action = created.id, created.outs, "create"
        else:
            diff = self.provider.diff(self.id, self.state, news)
            assert not diff.replaces, diff.replaces
            if not diff.changes:
                return "same", self.server.api.since(mark)
            self.state = self.provider.update(self.id, self.state, news).outs
            action = "update"
        return action, self.server.api.since(mark)

    def refresh(self) -> list[Recorded]:
        assert self.state is not None
        mark = self.server.api.mark()
        read = self.provider.read(self.id, self.state)
        self.id, self.state = read.id or "", read.outs
        return self.server.api.since(mark)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "config").mkdir()
    return tmp_path


def engine(server: CloudflareApiServer, registry: LocalRegistry, workdir: Path) -> Engine:
    env = wrangler_env(server, registry, workdir)
    for key in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "WRANGLER_OUTPUT_FILE_PATH"):
        env.pop(key)  # the provider sets these itself, from the resource's inputs
    # podman keeps `docker login` credentials under $XDG_RUNTIME_DIR: this test's own.
    env.update(XDG_RUNTIME_DIR=str(workdir / "run"), XDG_CONFIG_HOME=str(workdir / "config"))
    runner = wd.WranglerRunner(extra_env=env, node=str(node_bin_dir() / "node"))
    return Engine(wd.WorkerDeployProvider(runner=runner), server)


def make_bucket(server: CloudflareApiServer, registry: LocalRegistry) -> None:
    """A fresh account as the Worker deploy finds it: the Storage component's bucket exists,
    and the registry credentials the API mints are the local registry's."""
    server.api.registry_login = (registry.username, registry.password)
    c = cloudflare.Cloudflare(api_token=server.api.token, base_url=server.url, max_retries=0)
    c.r2.buckets.create(account_id=server.api.account_id, name=f"{SCRIPT}-data")


@pytest.fixture
def fresh(
    cf_api: CloudflareApiServer, local_registry: LocalRegistry
) -> Iterator[CloudflareApiServer]:
    make_bucket(cf_api, local_registry)
    yield cf_api


def comparable(end_state: dict[str, Any]) -> dict[str, Any]:
    """The parts of an end state both deploy paths must agree on (vars and secrets differ by
    design: the reference is worker/wrangler.jsonc, ours the stack's settings)."""
    ((name, script),) = end_state["scripts"].items()
    (app,) = end_state["applications"].values()
    kinds = {"durable_object_namespace", "r2_bucket", "browser", "assets"}
    return {
        "main_module": script["main_module"],
        "bindings": [b for b in script["bindings"] if b["type"] in kinds],
        "containers": script["containers"],
        "migration_tag": script["migration_tag"],
        "sqlite_classes": script["sqlite_classes"],
        "compatibility": (script["compatibility_date"], script["compatibility_flags"]),
        "assets": script["assets"],
        "workers_dev": script["workers_dev"],
        "app": {
            "image_is_a_digest_ref": bool(DIGEST_REF.match(app["image"] or "")),
            "instance_type": app["instance_type"],
            "max_instances": app["max_instances"],
            # Bound to this script's Sandbox namespace (the two paths name the Worker apart).
            "durable_object": app["durable_object"].replace(f"{name}.", "<script>.", 1),
        },
    }


def mutating(requests: list[Recorded]) -> list[str]:
    return [r.line() for r in requests if r.mutating]


def test_first_deploy_matches_wrangler_and_an_unchanged_one_sends_nothing(
    fresh: CloudflareApiServer,
    local_registry: LocalRegistry,
    workdir: Path,
    bundle: build.WorkerBundle,
    base: str,
    tmp_path: Path,
    reference_deploy: tuple[CloudflareApiServer, WranglerRun, WranglerRun],
) -> None:
    context = image_context(tmp_path, "v1")
    ours = engine(fresh, local_registry, workdir)
    action, first = ours.up(worker_props(bundle, context, base, fresh.api))
    assert action == "create"
    assert ours.state is not None and DIGEST_REF.match(ours.state["image"])
    assert re.fullmatch(r"[0-9a-f-]{32,36}", ours.state["version_id"])
    assert "secrets" not in ours.state  # state keeps hashes, never values

    # The session's plain `wrangler deploy` of the same Worker (the real image, its own account).
    _, ref, _ = reference_deploy
    assert comparable(fresh.api.end_state()) == comparable(ref.end_state)

    action, second = ours.up(worker_props(bundle, context, base, fresh.api))
    assert (action, second) == ("same", [])
    refreshed = ours.refresh()
    assert mutating(refreshed) == [] and refreshed
    action, after_refresh = ours.up(worker_props(bundle, context, base, fresh.api))
    assert (action, after_refresh) == ("same", []), "a refresh must not invent drift"
    print(
        f"\nrequests: first deploy {len(first)} ({len(mutating(first))} mutating); "
        f"unchanged deploy {len(second)}; refresh {len(refreshed)} (0 mutating); "
        f"reference wrangler deploy {len(ref.requests)} ({len(ref.mutating)} mutating)"
    )


def test_changes_roll_out_once_touch_only_what_changed_and_destroy_cleans_up(
    fresh: CloudflareApiServer,
    local_registry: LocalRegistry,
    workdir: Path,
    bundle: build.WorkerBundle,
    base: str,
    tmp_path: Path,
) -> None:
    api = fresh.api
    context = image_context(tmp_path, "v1")
    ours = engine(fresh, local_registry, workdir)
    ours.up(worker_props(bundle, context, base, api))
    assert ours.state is not None
    first_image = ours.state["image"]
    (app,) = api.apps.values()

    # A rotated secret: one new value, every other secret as it was, no rollout.
    before = dict(api.scripts[SCRIPT].secrets)
    rotated = {**SECRETS, "OPENCLAW_GATEWAY_TOKEN": "rotated-gateway-token-0123456789abcd"}
    action, _ = ours.up(worker_props(bundle, context, base, api, secrets=rotated))
    assert action == "update"
    after = api.scripts[SCRIPT].secrets
    assert sorted(k for k in after if after[k] != before.get(k)) == ["OPENCLAW_GATEWAY_TOKEN"]
    assert api.rollouts == [] and ours.state["image"] == first_image

    # A dropped secret is deleted (wrangler's --secrets-file keeps secrets it does not name).
    fewer = {k: v for k, v in rotated.items() if k != "ANTHROPIC_API_KEY"}
    ours.up(worker_props(bundle, context, base, api, secrets=fewer))
    assert sorted(api.scripts[SCRIPT].secrets) == sorted(fewer)

    # Instance type: the same image, one rollout with the new size.
    ours.up(worker_props(bundle, context, base, api, secrets=fewer, instance_type="standard-2"))
    assert len(api.rollouts) == 1
    assert api.apps[app["id"]]["configuration"]["instance_type"] == "standard-2"
    assert ours.state["image"] == first_image

    # A changed build context: a new image by digest, one more rollout.
    image_context(tmp_path, "v2")
    ours.up(worker_props(bundle, context, base, api, secrets=fewer, instance_type="standard-2"))
    assert len(api.rollouts) == 2
    assert DIGEST_REF.match(ours.state["image"]) and ours.state["image"] != first_image
    assert api.apps[app["id"]]["configuration"]["image"] == ours.state["image"]
    assert len(api.apps) == 1  # the same application throughout

    # Cron: the schedule is replaced, nothing is rolled out.
    ours.up(
        worker_props(
            bundle, context, base, api, secrets=fewer, instance_type="standard-2", cron="0 * * * *"
        )
    )
    assert [s["cron"] for s in api.scripts[SCRIPT].schedules] == ["0 * * * *"]
    assert len(api.rollouts) == 2

    # Destroy (an ephemeral stack): the Worker and its application go; the bucket is the
    # Storage component's (emptied and deleted by it, or protected on a kept stack).
    mark = api.mark()
    ours.provider.delete(ours.id, ours.state)
    assert api.scripts == {} and api.apps == {}
    assert f"{SCRIPT}-data" in api.buckets
    assert not [r for r in api.since(mark) if "/r2/" in r.path]
    ours.provider.delete(ours.id, ours.state)  # already gone: done, not an error
    assert ours.provider.read(ours.id, ours.state).id == ""  # Pulumi then plans a re-create


def test_a_custom_domain_as_wrangler_sets_it_and_the_switch_to_workers_dev_and_back(
    fresh: CloudflareApiServer,
    local_registry: LocalRegistry,
    workdir: Path,
    bundle: build.WorkerBundle,
    base: str,
    tmp_path: Path,
) -> None:
    api = fresh.api
    api.add_zone("example.com", ZONE)
    context = image_context(tmp_path, "v1")
    ours = engine(fresh, local_registry, workdir)

    def up(custom_domain: str) -> tuple[str, list[Recorded]]:
        return ours.up(worker_props(bundle, context, base, api, custom_domain=custom_domain))

    action, first = up(DOMAIN)
    assert action == "create"
    # wrangler's custom-domain publish: the zone's routes read for conflicts, then one PUT of
    # the origins (a CI deploy overrides an existing origin or DNS record without asking).
    assert [r.line() for r in first if "/zones/" in r.path] == [
        f"GET /client/v4/zones/{ZONE}/workers/routes -> 200"
    ]
    (publish,) = [r for r in first if r.path.endswith("/domains/records")]
    assert publish.method == "PUT" and publish.body["origins"] == [
        {"hostname": DOMAIN, "zone_id": ZONE}
    ]
    assert publish.body["override_existing_origin"] is True
    assert api.end_state()["domains"] == [(DOMAIN, SCRIPT)]
    assert api.end_state()["scripts"][SCRIPT]["workers_dev"] is False

    # Plain wrangler with the same route leaves the same end state.
    with CloudflareApiServer() as reference:
        make_bucket(reference, local_registry)
        reference.api.add_zone("example.com", ZONE)
        config = reference_config(
            SCRIPT,
            image_vars={"OPENCLAW_VERSION": "2026.9.6", "BASE_IMAGE": base},
            dockerfile=context / "Dockerfile",
        )
        config["workers_dev"] = False
        config["routes"] = [{"pattern": DOMAIN, "custom_domain": True, "zone_id": ZONE}]
        ref = run_deploy(reference, local_registry, tmp_path / "ref", config)
        assert ref.returncode == 0, ref.output[-3000:]
    assert comparable(api.end_state()) == comparable(ref.end_state)
    assert api.end_state()["domains"] == ref.end_state["domains"]

    assert up(DOMAIN) == ("same", [])

    # Back to workers.dev: wrangler turns the route on and sends no domain request at all, so
    # our path removes the domain the stack no longer names. Nothing is rolled out.
    (domain_id,) = api.domains
    action, sent = up("")
    assert action == "update"
    assert [r.line() for r in sent if "/domains" in r.path and r.mutating] == [
        f"DELETE /client/v4/accounts/{api.account_id}/workers/domains/{domain_id} -> 200"
    ]
    assert api.end_state()["domains"] == []
    assert api.end_state()["scripts"][SCRIPT]["workers_dev"] is True
    assert api.rollouts == []
    assert up("") == ("same", [])

    # ... and to the custom domain again.
    action, _ = up(DOMAIN)
    assert action == "update"
    assert api.end_state()["domains"] == [(DOMAIN, SCRIPT)]
    assert api.end_state()["scripts"][SCRIPT]["workers_dev"] is False
    assert up(DOMAIN) == ("same", [])

    # Destroy takes the domain with the Worker.
    assert ours.state is not None
    ours.provider.delete(ours.id, ours.state)
    assert api.domains == {} and api.scripts == {} and api.apps == {}


# What wrangler asks after a 403 to say whose token it is.
WHOAMI = {"/user/tokens/verify", "/user", "/memberships", "/accounts"}
RATE_LIMITED = {"code": 971, "message": "Please wait and consider throttling your request speed"}


def test_a_bad_token_a_missing_permission_and_a_429_storm(
    fresh: CloudflareApiServer,
    local_registry: LocalRegistry,
    workdir: Path,
    bundle: build.WorkerBundle,
    base: str,
    tmp_path: Path,
) -> None:
    """The token failures, once for both modules: what wrangler sends (where it stops, what it
    retries) and the sentence our deploy path makes of it."""
    api = fresh.api
    context = image_context(tmp_path, "v1")
    # `adopt` skips the provider's own look-up before a create (the SDK's errors are mapped by
    # infra/dynamic/cf.py, tested with it), so every request here is wrangler's.
    props = {**worker_props(bundle, context, base, api), "adopt": True}
    ours = engine(fresh, local_registry, workdir)

    # A bad token: the deploy ends at wrangler's first request.
    wrong = {**props, "api_token": "wrong-token-0123456789abcdef"}
    mark = api.mark()
    with pytest.raises(wd.WranglerError) as err:
        ours.provider.create(ours.check(wrong))
    assert "the API token was rejected" in str(err.value)
    assert "wrong-token-0123456789abcdef" not in str(err.value)
    assert [r.status for r in api.since(mark)] == [401]

    # A 429 on a read is not retried by wrangler: the deploy stops before changing anything.
    mark = api.mark()
    api.fail("GET", r"/workers/services/", 429, headers={"Retry-After": "1"}, **RATE_LIMITED)
    with pytest.raises(wd.WranglerError, match="still rate limited"):
        ours.provider.create(ours.check(props))
    sent = api.since(mark)
    assert sent[0].status == 429 and mutating(sent) == []

    # No Workers permission: refused at the first request; wrangler then only asks whose token
    # it is.
    api.revoke("workers")
    mark = api.mark()
    with pytest.raises(wd.WranglerError) as err:
        ours.provider.create(ours.check(props))
    assert "lacks the 'Workers Scripts Write' permission" in str(err.value)
    sent = api.since(mark)
    assert sent[0].status == 403 and sent[0].path.endswith(f"/services/{SCRIPT}")
    assert {r.path.removeprefix("/client/v4") for r in sent[1:]} <= WHOAMI
    assert mutating(sent) == [] and api.scripts == {}
    api.tokens[api.token].add("workers")

    # No Containers permission: the Worker is uploaded, then the image step is refused; no
    # application is made (a failed first deploy is not all-or-nothing).
    api.revoke("containers")
    mark = api.mark()
    with pytest.raises(wd.WranglerError) as err:
        ours.provider.create(ours.check(props))
    assert "lacks the 'Containers Write' permission" in str(err.value)
    sent = api.since(mark)
    assert next(r for r in sent if r.status == 403).path.endswith("/containers/me")
    assert not [r for r in sent if r.mutating and "/containers/" in r.path]
    assert SCRIPT in api.scripts and api.apps == {}
    api.tokens[api.token].add("containers")

    # Two 429s on the upload: wrangler waits (Retry-After) and retries; the deploy completes.
    api.fail("PUT", rf"/workers/scripts/{SCRIPT}$", 429, times=2, headers={"Retry-After": "1"},
             **RATE_LIMITED)  # fmt: skip
    mark = api.mark()
    created = ours.provider.create(ours.check(props))
    assert created.outs is not None and len(api.apps) == 1
    puts = [r.status for r in api.since(mark) if r.method == "PUT" and r.path.endswith(SCRIPT)]
    assert puts == [429, 429, 200]

    # A storm: three attempts, then one sentence that says to wait.
    api.fail("PUT", rf"/workers/scripts/{SCRIPT}$", 429, times=99, headers={"Retry-After": "1"},
             **RATE_LIMITED)  # fmt: skip
    changed = {**props, "vars": {**props["vars"], "SLEEP_AFTER": "30m"}}
    mark = api.mark()
    with pytest.raises(wd.WranglerError, match="still rate limited"):
        ours.provider.update(created.id, created.outs, ours.check(changed))
    puts = [r.status for r in api.since(mark) if r.method == "PUT" and r.path.endswith(SCRIPT)]
    assert puts == [429, 429, 429]


def test_the_versions_api_path_is_refused_where_ours_is_not(
    fresh: CloudflareApiServer,
    local_registry: LocalRegistry,
    workdir: Path,
    bundle: build.WorkerBundle,
    base: str,
    tmp_path: Path,
) -> None:
    """What the old WorkerVersion path sent (a version upload: the Sandbox class declared only
    in `exports`, or carrying the migration) against what ours sends (wrangler's script PUT)."""
    account = fresh.api.account_id
    module = (bundle.directory / bundle.main_module).read_bytes()
    # The script must exist for a version upload to be possible at all.
    ours = engine(fresh, local_registry, workdir)
    ours.up(worker_props(bundle, image_context(tmp_path, "v1"), base, fresh.api))
    common = {
        "main_module": bundle.main_module,
        "compatibility_date": "2026-08-15",
        "containers": [{"class_name": "NewSandbox"}],
    }
    binding = {"name": "NEW", "type": "durable_object_namespace", "class_name": "NewSandbox"}
    shapes = {
        100406: {
            **common,
            "bindings": [binding],
            "exports": {"NewSandbox": {"type": "durable-object", "storage": "sqlite"}},
        },
        10211: {
            **common,
            "bindings": [binding],
            "migrations": {
                "old_tag": "v1",
                "new_tag": "v2",
                "steps": [{"new_sqlite_classes": ["NewSandbox"]}],
            },
        },
    }
    for code, metadata in shapes.items():
        # The multipart shape of a version upload (metadata + one part per module).
        answer = httpx.post(
            f"{fresh.url}/accounts/{account}/workers/scripts/{SCRIPT}/versions",
            headers={"Authorization": f"Bearer {fresh.api.token}"},
            files={
                "metadata": (None, json.dumps(metadata), "application/json"),
                bundle.main_module: (bundle.main_module, module, "application/javascript+module"),
            },
            timeout=30,
        )
        codes = {e["code"] for e in answer.json()["errors"]}
        assert answer.status_code == 400 and code in codes, answer.text
    # Our path for the same Worker went through: the class exists with its SQLite storage.
    assert fresh.api.end_state()["scripts"][SCRIPT]["sqlite_classes"] == ["Sandbox"]
    # ... and never used the versions API: the only version uploads are the two refused above.
    assert len(fresh.api.calls("POST", rf"/workers/scripts/{SCRIPT}/versions$")) == 2
