"""The wrangler deploy provider's own logic: config rendering, check, diff, what an update runs.

Its requests against a fake Cloudflare API with the real wrangler are in
test_deploy_rehearsal.py; here wrangler is replaced by a recorder where the question is what
our side hands it (the config, the secrets file and its mode), never what Cloudflare answers.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

import contract
from infra.dynamic import worker_deploy as wd
from tests.infra.cf_api import CloudflareApi
from tests.infra.harness import run_program_full, unwrap

pytestmark = pytest.mark.timeout(60)
DIGEST_REF = "registry.cloudflare.com/" + "0" * 32 + "/moltworker-dev@sha256:" + "1" * 64


def deploy_props(stack: str = "dev", **overrides: str | None) -> dict[str, Any]:
    """The WorkerDeploy inputs the program registers for an example stack (values unwrapped)."""
    run = run_program_full(stack, overrides)
    (res,) = run.dynamic("worker-deploy")
    props = unwrap(res.inputs)
    props.pop("__provider")
    # The fixture Worker has no node_modules; the project's pinned wrangler is the one to check.
    props["wrangler"] = "worker/node_modules/wrangler/bin/wrangler.js"
    return props


def checked(props: dict[str, Any]) -> dict[str, Any]:
    result = wd.WorkerDeployProvider().check({}, props)
    return result.inputs


def test_rendered_config_carries_every_binding_the_container_and_the_route() -> None:
    props = checked(deploy_props("prod"))
    config = wd.render_config(props, props["dockerfile"])
    assert config["name"] == "moltworker-prod"
    assert config["no_bundle"] is True and config["main"].endswith("/bundle/index.js")
    assert config["durable_objects"] == {"bindings": [{"name": "SANDBOX", "class_name": "Sandbox"}]}
    assert config["migrations"] == [{"tag": "v1", "new_sqlite_classes": ["Sandbox"]}]
    assert config["r2_buckets"] == [{"binding": "DATA", "bucket_name": "moltworker-prod-data"}]
    assert config["browser"] == {"binding": "BROWSER"}
    assert config["assets"]["binding"] == "ASSETS" and config["assets"]["run_worker_first"]
    assert Path(config["assets"]["directory"]).is_absolute()
    (container,) = config["containers"]
    assert container == {
        "name": "moltworker-prod",
        "class_name": "Sandbox",
        "image": config["containers"][0]["image"],
        "image_build_context": container["image_build_context"],
        "image_vars": {"OPENCLAW_VERSION": "2026.9.6"},
        "instance_type": "standard-2",
        "max_instances": 1,
        "rollout_step_percentage": 100,
    }
    assert container["image"].endswith("/container/Dockerfile")
    assert config["routes"] == [
        {"pattern": "agent.example.com", "custom_domain": True, "zone_id": "1" * 32}
    ]
    assert config["workers_dev"] is False and config["triggers"] == {"crons": ["*/5 * * * *"]}
    assert config["compatibility_date"] == "2026-08-15"
    assert config["vars"]["DEBUG_ROUTES"] == "false"
    # No secret value reaches the config file: they go through --secrets-file only.
    text = json.dumps(config)
    assert not [v for v in props["secrets"].values() if v in text]


def test_check_hashes_each_secret_and_a_rotation_changes_one_hash() -> None:
    base = checked(deploy_props("dev"))
    rotated = checked(deploy_props("dev", rotateGatewayToken="1"))
    assert set(base["secret_hashes"]) == set(base["secrets"]) == set(base["secret_names"])
    changed = sorted(
        k for k in base["secret_hashes"] if base["secret_hashes"][k] != rotated["secret_hashes"][k]
    )
    assert changed == ["OPENCLAW_GATEWAY_TOKEN"]
    assert not [v for v in base["secrets"].values() if v in json.dumps(base["secret_hashes"])]
    diff = wd.WorkerDeployProvider().diff("id", base, rotated)
    assert diff.changes and diff.replaces == []


def test_check_refuses_bad_inputs_and_names_the_wrangler_pin() -> None:
    props = deploy_props("dev")
    bad = {
        **props,
        "instance_type": "xl",
        "max_instances": 50.0,
        "bindings": [*props["bindings"], {"name": "Q", "type": "queue"}],
        "vars": {**props["vars"], "OPENCLAW_GATEWAY_TOKEN": "x"},
        "wrangler_version": "0.0.1",
    }
    failures = {f.property: f.reason for f in wd.WorkerDeployProvider().check({}, bad).failures}
    assert set(failures) == {"instance_type", "max_instances", "bindings", "vars", "wrangler"}
    assert "the pin is 0.0.1" in failures["wrangler"] and "npm ci" in failures["wrangler"]
    assert wd.WorkerDeployProvider().check({}, props).failures == []


def test_an_openclaw_version_change_deploys_only_when_rehearsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    olds = checked(deploy_props("dev"))
    news = checked(deploy_props("dev", openclawVersion="2026.9.7"))
    # The preview shows the change as an ordinary update...
    assert wd.WorkerDeployProvider().diff("id", olds, news).changes is True
    # ...and the deploy stops before wrangler runs, naming the way through.
    recorder = Recorder()
    provider = wd.WorkerDeployProvider(runner=recorder)
    monkeypatch.delenv(contract.OPENCLAW_REHEARSED_VAR, raising=False)
    with pytest.raises(wd.UnrehearsedUpgrade) as refused:
        provider.update("id", olds, news)
    message = str(refused.value)
    assert "openclawVersion 2026.9.6 -> 2026.9.7 was not rehearsed" in message
    assert "python -m ops upgrade --stack dev --to 2026.9.7" in message
    assert f"{contract.OPENCLAW_REHEARSED_VAR}=2026.9.7" in message
    # Rehearsed for another version: still refused.
    monkeypatch.setenv(contract.OPENCLAW_REHEARSED_VAR, "2026.9.8")
    with pytest.raises(wd.UnrehearsedUpgrade):
        provider.update("id", olds, news)
    assert recorder.seen == []
    # What `ops upgrade` sets for its own `pulumi up`: wrangler runs.
    monkeypatch.setenv(contract.OPENCLAW_REHEARSED_VAR, "2026.9.7")
    with pytest.raises(wd.WranglerError, match="recorded"):
        provider.update("id", olds, news)
    assert len(recorder.seen) == 1
    # Any other change never needs it.
    monkeypatch.delenv(contract.OPENCLAW_REHEARSED_VAR)
    other = checked(deploy_props("dev", sleepAfter="30m"))
    wd.refuse_unrehearsed_upgrade(olds, other, os.environ)


def test_check_accepts_values_unknown_during_preview() -> None:
    props = deploy_props("dev")
    props["secrets"]["AI_GATEWAY_TOKEN"] = rpc.UNKNOWN
    props["max_instances"] = rpc.UNKNOWN
    result = wd.WorkerDeployProvider().check({}, props)
    assert result.failures == []
    assert result.inputs["secret_hashes"]["AI_GATEWAY_TOKEN"] == rpc.UNKNOWN


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"instanceType": "standard-2"}, []),
        ({"maxInstances": "2"}, []),
        ({"cronSchedule": "*/10 * * * *"}, []),
        ({"openclawVersion": "2026.9.7"}, []),
        ({"sleepAfter": "30m"}, []),
        ({"workerName": "other-name"}, ["script_name"]),
    ],
)
def test_diff_per_setting(change: dict[str, str], replaces: list[str]) -> None:
    olds = checked(deploy_props("dev"))
    news = checked(deploy_props("dev", **change))
    diff = wd.WorkerDeployProvider().diff("id", olds, news)
    assert diff.changes is True and diff.replaces == replaces
    assert diff.delete_before_replace is bool(replaces)
    same = wd.WorkerDeployProvider().diff("id", olds, checked(deploy_props("dev")))
    assert same.changes is False  # an unchanged program: no update, no wrangler run


class Recorder(wd.WranglerRunner):
    """Stands in for the wrangler process to show what our side hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def __call__(self, props: Any, args: Any, workdir: Path, redact: Any) -> wd.WranglerRun:
        secrets = Path(args[args.index("--secrets-file") + 1])
        config = Path(args[args.index("--config") + 1])
        self.seen.append(
            {
                "args": list(args),
                "secrets_mode": stat.S_IMODE(secrets.stat().st_mode),
                "dir_mode": stat.S_IMODE(os.stat(workdir).st_mode),
                "secrets": json.loads(secrets.read_text()),
                "config": json.loads(config.read_text()),
            }
        )
        raise wd.WranglerError("recorded")  # stop before the SDK read of the result


def fake_api(props: dict[str, Any]) -> CloudflareApi:
    """A fresh fake account the props' token and account id fit (tests/infra/cf_api.py)."""
    return CloudflareApi(token=props["api_token"], account_id=props["account_id"])


def test_secrets_reach_wrangler_only_through_a_0600_file_that_is_removed() -> None:
    props = checked(deploy_props("dev"))
    recorder = Recorder()
    provider = wd.WorkerDeployProvider(runner=recorder, http_client_factory=fake_api(props).client)
    with pytest.raises(wd.WranglerError, match="recorded"):
        provider.create(props)
    (seen,) = recorder.seen
    assert seen["secrets_mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert seen["secrets"] == props["secrets"]
    assert not [v for v in props["secrets"].values() if v in " ".join(seen["args"])]
    assert not Path(seen["args"][2]).parent.exists()  # the directory with the file is gone


def test_an_unchanged_build_redeploys_the_running_image_and_a_new_build_the_dockerfile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(contract.OPENCLAW_REHEARSED_VAR, "2026.9.7")  # as `ops upgrade` runs it
    olds = {**checked(deploy_props("dev")), "image": DIGEST_REF, "application_id": "app"}
    recorder = Recorder()
    provider = wd.WorkerDeployProvider(runner=recorder)
    with pytest.raises(wd.WranglerError):
        provider.update("id", olds, checked(deploy_props("dev", sleepAfter="30m")))
    with pytest.raises(wd.WranglerError):
        provider.update("id", olds, checked(deploy_props("dev", openclawVersion="2026.9.7")))
    first, second = recorder.seen
    assert first["config"]["containers"][0]["image"] == DIGEST_REF
    assert second["config"]["containers"][0]["image"].endswith("/container/Dockerfile")
    assert second["config"]["containers"][0]["image_vars"] == {"OPENCLAW_VERSION": "2026.9.7"}


def test_a_token_change_alone_runs_nothing() -> None:
    olds = {**checked(deploy_props("dev")), "image": DIGEST_REF, "application_id": "app"}
    olds.pop("secrets")
    news = {**checked(deploy_props("dev")), "api_token": "a-new-token-value-0123456789"}
    recorder = Recorder()
    outs = wd.WorkerDeployProvider(runner=recorder).update("id", olds, news).outs
    assert recorder.seen == []
    assert outs is not None and outs["image"] == DIGEST_REF and "secrets" not in outs


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            "A request to the Cloudflare API (/accounts/abc/workers/scripts/w) failed.\n"
            "Unable to authenticate request [code: 10001]",
            "the API token was rejected",
        ),
        (
            "A request to the Cloudflare API (/accounts/abc/containers/applications) failed.\n"
            "Authentication error [code: 10000]",
            "lacks the 'Containers Write' permission",
        ),
        (
            "A request to the Cloudflare API (/accounts/abc/workers/scripts/w) failed.\n"
            "Authentication error [code: 10000]",
            "lacks the 'Workers Scripts Write' permission",
        ),
        (
            "A request to the Cloudflare API (/accounts/abc/workers/scripts/w) failed.\n"
            "Please wait and consider throttling your request speed [code: 971]",
            "still rate limited",
        ),
    ],
)
def test_wrangler_failures_become_one_sentence(log: str, expected: str) -> None:
    assert expected in wd.explain_wrangler_failure(log, "wrangler deploy 'w'")


def test_create_refuses_a_live_worker_it_did_not_make_unless_the_stack_adopts_it() -> None:
    """A stack made by the old deploy path: its script and application are live under the same
    names. The create stops before wrangler runs (so before the engine's deletes of the old
    resources), and says which command fixes it; with `adopt` it deploys over them."""
    props = checked(deploy_props("dev"))
    api = fake_api(props)
    with api.client() as http:
        files = {
            "metadata": (None, json.dumps({"main_module": "index.js"}), "application/json"),
            "index.js": ("index.js", b"export default {}", "application/javascript+module"),
        }
        url = f"https://api.cloudflare.com/client/v4/accounts/{api.account_id}/workers/scripts/"
        answer = http.put(url + props["script_name"], files=files,
                          headers={"Authorization": f"Bearer {api.token}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
    recorder = Recorder()
    provider = wd.WorkerDeployProvider(runner=recorder, http_client_factory=api.client)
    mark = api.mark()
    with pytest.raises(wd.WranglerError) as err:
        provider.create(props)
    message = str(err.value)
    assert f"Worker {props['script_name']!r}" in message
    assert "python -m ops adopt --stack dev" in message and "nothing was deployed" in message
    assert recorder.seen == [] and not [r for r in api.since(mark) if r.mutating]

    # An application of that name alone (the old path's, its script already gone) also stops it.
    del api.scripts[props["script_name"]]
    api.apps["app"] = {"id": "app", "name": props["app_name"]}
    with pytest.raises(wd.WranglerError, match="container application"):
        provider.create(props)
    assert recorder.seen == []

    with pytest.raises(wd.WranglerError, match="recorded"):
        provider.create({**props, "adopt": True})
    assert len(recorder.seen) == 1  # adopted: wrangler deploys over it
