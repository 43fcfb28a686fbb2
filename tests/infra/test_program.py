"""The whole program under mocks, for each example stack: every important property."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import contract
from infra import permissions
from infra.dynamic.bucket_emptier import BucketEmptierProvider
from infra.dynamic.worker_deploy import WorkerDeployProvider
from tests.infra.harness import (
    TEAM_DOMAIN,
    TEST_SECRETS,
    ProgramRun,
    _fake,
    is_secret_at,
    plain_strings,
    run_program_full,
    unwrap,
)

pytestmark = pytest.mark.timeout(120)

ACCOUNT = "0" * 32
TOKEN = "cloudflare:index/accountToken:AccountToken"
DEPLOY = "pulumi-python:dynamic/moltworker:WorkerDeploy"
APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
HOSTS = {"dev": "moltworker-dev.your-subdomain.workers.dev", "prod": "agent.example.com"}


@cache
def run(stack: str) -> ProgramRun:
    return run_program_full(stack)


def bindings(r: ProgramRun) -> dict[str, dict]:
    """The Worker's bindings as the upload carries them: typed ones, vars, then secrets."""
    deploy = r.one(DEPLOY).plain
    found = {b["name"]: b for b in deploy["bindings"]}
    for name, text in deploy["vars"].items():
        found[name] = {"name": name, "type": "plain_text", "text": text}
    for name, text in deploy["secrets"].items():
        found[name] = {"name": name, "type": "secret_text", "text": text}
    return found


def secret_values(r: ProgramRun) -> set[str]:
    """Every value that must never appear in plain text in any resource input."""
    values = set(TEST_SECRETS.values())
    for res in r.resources:
        outs = res.outputs
        for key in ("result", "base64", "value", "clientSecret", "password"):
            value = outs.get(key)
            if isinstance(value, dict):  # secret-wrapped output
                value = value.get("value")
            if isinstance(value, str) and res.type != "cloudflare:index/r2Bucket:R2Bucket":
                values.add(value)
                if res.type == TOKEN and key == "value":
                    values.add(hashlib.sha256(value.encode()).hexdigest())
    return {v for v in values if len(v) >= 8}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_bucket_token_is_scoped_to_exactly_this_bucket(stack: str) -> None:
    r = run(stack)
    token = r.one(TOKEN, "storage-token")
    (policy,) = token.plain["policies"]
    assert policy["effect"] == "allow", token.urn
    published = contract.R2_BUCKET_ITEM_WRITE.published_id
    assert policy["permissionGroups"] == [{"id": published}], (
        f"{token.urn}: not the exact 'Workers R2 Storage Bucket Item Write' group"
    )
    bucket = f"moltworker-{stack}-data"
    assert json.loads(policy["resources"]) == {
        f"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_{bucket}": "*"
    }, token.urn
    assert r.one("cloudflare:index/r2Bucket:R2Bucket").plain["name"] == bucket


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_s3_credentials_derive_from_the_scoped_token_and_stay_secret(stack: str) -> None:
    r = run(stack)
    token = r.one(TOKEN, "storage-token")
    value = token.outputs["value"]
    value = value["value"] if isinstance(value, dict) else value
    b = bindings(r)
    assert b["R2_SECRET_ACCESS_KEY"]["text"] == hashlib.sha256(value.encode()).hexdigest()
    assert b["R2_SECRET_ACCESS_KEY"]["type"] == "secret_text"
    assert b["R2_ACCESS_KEY_ID"]["text"] == _fake("tokid", "storage-token")
    assert b["R2_ACCESS_KEY_ID"]["type"] == "secret_text"
    assert is_secret_at(r.one(DEPLOY).inputs, "secrets")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_access_covers_the_admin_paths_for_named_people_only(stack: str) -> None:
    r = run(stack)
    host = HOSTS[stack]
    app = r.one(APP).plain
    uris = [d["uri"] for d in app["destinations"]]
    for path in ("/_admin", "/api", "/debug"):
        assert f"{host}{path}" in uris and f"{host}{path}/*" in uris, uris
    assert all(d["type"] == "public" for d in app["destinations"])
    assert app["type"] == "self_hosted"
    admins = r.one(POLICY, "access-admins").plain
    assert admins["decision"] == "allow"
    assert all("everyone" not in inc for inc in admins["includes"])
    if stack == "dev":
        assert admins["includes"] == [{"email": {"email": "you@example.com"}}]
    else:
        assert admins["includes"] == [{"emailDomain": {"domain": "example.com"}}]
    ids = [p["id"] for p in app["policies"]]
    assert ids[0] == _fake("pol", "access-admins")
    has_ci = stack == "dev"  # only the dev example turns the CI service token on
    assert len(ids) == (2 if has_ci else 1)
    assert bool(r.by_type(SERVICE_TOKEN)) == has_ci
    if has_ci:
        ci = r.one(POLICY, "access-ci").plain
        assert ci["decision"] == "non_identity"
        assert list(ci["includes"][0]) == ["serviceToken"]
        assert r.outputs["accessClientSecret"]["secret"] and r.outputs["accessClientId"]["secret"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_aud_and_team_domain_flow_into_worker_secrets(stack: str) -> None:
    r = run(stack)
    b = bindings(r)
    assert b["CF_ACCESS_AUD"] == {
        "name": "CF_ACCESS_AUD",
        "type": "secret_text",
        "text": r.one(APP).outputs["aud"],
    }
    assert b["CF_ACCESS_TEAM_DOMAIN"]["text"] == TEAM_DOMAIN
    assert b["CF_ACCESS_TEAM_DOMAIN"]["type"] == "secret_text"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_worker_bindings_match_the_interface_contract(stack: str) -> None:
    r = run(stack)
    b = bindings(r)
    assert b["SANDBOX"] == {
        "name": "SANDBOX",
        "type": "durable_object_namespace",
        "class_name": "Sandbox",
    }
    assert b["BROWSER"] == {"name": "BROWSER", "type": "browser"}
    assert b["DATA"] == {
        "name": "DATA",
        "type": "r2_bucket",
        "bucket_name": f"moltworker-{stack}-data",
    }
    assert b["ASSETS"]["type"] == "assets"
    deploy = r.one(DEPLOY).plain
    # The class is created by the migration of wrangler.jsonc, SQLite-backed as containers need.
    assert deploy["migrations"] == [{"tag": "v1", "new_sqlite_classes": ["Sandbox"]}]
    assert deploy["class_name"] == "Sandbox"
    assert "exports" not in deploy
    assert deploy["compatibility_date"] == "2026-08-15"  # read from the fixture wrangler.jsonc
    assert deploy["assets"]["run_worker_first"] is True
    assert deploy["main_module"] == "index.js" and list(deploy["modules"]) == ["index.js"]
    secrets = {
        "OPENCLAW_GATEWAY_TOKEN", "MOLT_CONTROL_SECRET", "MOLT_CDP_SECRET", "MOLT_SNAPSHOT_KEY",
        "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "AI_GATEWAY_TOKEN", "CF_ACCESS_AUD",
        "CF_ACCESS_TEAM_DOMAIN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN",
        "DISCORD_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN",
    }  # fmt: skip
    assert {n for n, v in b.items() if v["type"] == "secret_text"} == secrets
    assert set(deploy["secret_names"]) == secrets  # names in the clear, for the diff and the pack
    plain = {n: v["text"] for n, v in b.items() if v["type"] == "plain_text"}
    assert plain["DEBUG_ROUTES"] == ("true" if stack == "dev" else "false")
    assert plain["SLEEP_AFTER"] == ("10m" if stack == "dev" else "never")
    assert plain["CRON_SNAPSHOT_AFTER"] == "5m"
    assert plain["MODEL_PRIMARY"] == "anthropic/claude-sonnet-4-5"
    assert plain["R2_ENDPOINT"] == f"https://{ACCOUNT}.r2.cloudflarestorage.com"
    assert plain["AI_GATEWAY_BASE_URL"] == (
        f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/moltworker-{stack}"
    )
    assert not {n for n in b if n.startswith(("LOCAL_", "MOLT_LOCAL"))}
    assert len(base64.b64decode(b["MOLT_SNAPSHOT_KEY"]["text"])) == 32


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_ai_route_follows_the_configured_fallback_order(stack: str) -> None:
    r = run(stack)
    chain = [r.config["moltworker:modelPrimary"]]
    chain += json.loads(r.config["moltworker:modelFallbacks"])
    route = r.one("cloudflare:index/aiGatewayDynamicRouting:AiGatewayDynamicRouting").plain
    elements = {e["id"]: e for e in route["elements"]}
    walked, at = [], elements["start"]["outputs"]["next"]["elementId"]
    while at != "end":
        element = elements[at]
        props = element["properties"]
        walked.append(f"{props['aiGatewayDynamicRoutingProvider']}/{props['model']}")
        assert element["outputs"]["success"]["elementId"] == "end"
        at = element["outputs"]["fallback"]["elementId"]
    assert walked == chain
    plain = {n: v.get("text") for n, v in bindings(r).items()}
    assert plain["MODEL_FALLBACKS"] == ",".join(chain[1:])
    gateway = r.one("cloudflare:index/aiGateway:AiGateway").plain
    assert gateway["authentication"] is True
    assert gateway["rateLimitingLimit"] >= 1 and gateway["rateLimitingInterval"] >= 1
    assert gateway["collectLogs"] is True
    token = r.one(TOKEN, "ai-token").plain
    assert token["policies"][0]["permissionGroups"] == [
        {"id": _fake("pg", permissions.AI_GATEWAY_RUN)}
    ]


def test_prod_data_is_protected_and_never_emptied() -> None:
    r = run("prod")
    protected = {res.name for res in r.resources if res.protect}
    assert {
        "storage-bucket",
        "storage-lifecycle",
        "storage-token",
        "secrets-snapshot-key",
    } <= protected
    assert not r.dynamic("bucket-emptier")
    assert "worker-deploy" not in protected  # code and config stay replaceable


def test_dev_is_ephemeral_and_empties_its_bucket_before_deleting_it() -> None:
    r = run("dev")
    assert not [res.name for res in r.resources if res.protect]
    (emptier,) = r.dynamic("bucket-emptier")
    bucket = r.one("cloudflare:index/r2Bucket:R2Bucket")
    token = r.one(TOKEN, "storage-token")
    # Pulumi deletes dependents first: the emptier runs while the bucket and token exist.
    assert bucket.urn in emptier.dependencies and token.urn in emptier.dependencies
    assert emptier.plain["bucket"] == "moltworker-dev-data"
    assert is_secret_at(emptier.inputs, "secret_access_key")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_lifecycle_never_targets_live_snapshot_data(stack: str) -> None:
    rules = run(stack).one("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle").plain["rules"]
    for rule in rules:
        prefix = rule["conditions"]["prefix"]
        if "deleteObjectsTransition" in rule:
            assert prefix == "trash/", rule
        else:
            assert set(rule) & {"abortMultipartUploadsTransition"}, rule


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_container_is_built_by_the_deploy_and_bounded(stack: str) -> None:
    r = run(stack)
    deploy = r.one(DEPLOY)
    plain = deploy.plain
    assert plain["app_name"] == f"moltworker-{stack}"
    assert plain["script_name"] == f"moltworker-{stack}"
    assert plain["dockerfile"].endswith("/container/Dockerfile")
    assert plain["image_vars"] == {"OPENCLAW_VERSION": "2026.9.6"}
    assert len(plain["image_fingerprint"]) == 64
    assert plain["max_instances"] == 1
    assert plain["instance_type"] == ("standard-1" if stack == "dev" else "standard-2")
    assert plain["rollout_step_percentage"] == 100
    assert is_secret_at(deploy.inputs, "api_token")
    # The application runs what wrangler pushed, by digest.
    assert "@sha256:" in r.outputs["imageRef"]["value"]
    bucket = r.one("cloudflare:index/r2Bucket:R2Bucket")
    assert bucket.urn in deploy.dependencies  # the bucket exists before wrangler binds it


def test_hostnames_per_stack() -> None:
    dev, prod = run("dev"), run("prod")
    dev_deploy, prod_deploy = dev.one(DEPLOY).plain, prod.one(DEPLOY).plain
    assert dev_deploy["workers_dev"] is True and dev_deploy["custom_domain"] == ""
    assert prod_deploy["workers_dev"] is False
    assert prod_deploy["custom_domain"] == "agent.example.com"
    assert prod_deploy["zone_id"] == "1" * 32
    assert dev.outputs["workerUrl"]["value"] == f"https://{HOSTS['dev']}"
    assert prod.outputs["adminUrl"]["value"] == "https://agent.example.com/_admin/"
    assert prod_deploy["cron"] == ["*/5 * * * *"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_appears_in_plain_text_in_any_input(stack: str) -> None:
    r = run(stack)
    secrets = secret_values(r)
    assert len(secrets) >= 10, secrets  # the check below must have something to find
    leaks = [
        f"{res.urn} {path}"
        for res in r.resources
        for path, text in plain_strings(res.inputs)
        if any(s in text for s in secrets)
    ]
    assert not leaks, leaks
    assert r.outputs["gatewayToken"]["secret"] is True


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_children_follow_the_component_conventions(stack: str) -> None:
    r = run(stack)
    components = {res.urn: res for res in r.resources if not res.custom}
    assert {c.type.split(":")[0] for c in components.values()} == {"moltworker"}
    for res in r.resources:
        if res.custom:
            assert res.parent in components, f"{res.urn} has no component parent"
            parent = components[res.parent]
            assert res.name.startswith(f"{parent.name}-"), res.urn


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_running_twice_gives_identical_inputs(stack: str) -> None:
    first = {res.urn: res.inputs for res in run_program_full(stack).resources}
    second = {res.urn: res.inputs for res in run_program_full(stack).resources}
    assert first.keys() == second.keys()
    differing = [urn for urn in first if first[urn] != second[urn]]
    assert not differing, differing


def test_rotation_counter_replaces_only_that_secret() -> None:
    base = {res.urn: res for res in run("dev").resources}
    rotated = {
        res.urn: res for res in run_program_full("dev", {"rotateGatewayToken": "1"}).resources
    }
    changed = sorted(base[u].name for u in base if base[u].inputs != rotated[u].inputs)
    # The token and the deploy carrying it; within the deploy only the secret values (and
    # test_dynamic_providers shows that only this one secret's hash changes).
    assert changed == ["secrets-gateway-token", "worker-deploy"], changed
    (old,) = [r for r in base.values() if r.name == "worker-deploy"]
    (new,) = [r for r in rotated.values() if r.name == "worker-deploy"]
    differing = sorted(k for k in old.inputs if old.inputs[k] != new.inputs[k])
    assert differing == ["secrets"], differing


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_exports_are_the_ones_ops_reads_and_secrets_stay_secret(stack: str) -> None:
    outputs = run(stack).outputs
    expected_secret = {
        "r2AccessKeyId", "r2SecretAccessKey", "snapshotKey", "gatewayToken", "accessTeamDomain",
    }  # fmt: skip
    expected_plain = {
        "workerUrl", "adminUrl", "aiGatewayEndpoint", "imageRef", "bucket", "r2Endpoint",
        "snapshotKeep", "ephemeral",
    }  # fmt: skip
    if stack == "dev":
        expected_secret |= {"accessClientId", "accessClientSecret"}
    assert set(outputs) == expected_secret | expected_plain
    assert {k for k, v in outputs.items() if v["secret"]} == expected_secret
    assert outputs["ephemeral"]["value"] is (stack == "dev")
    assert outputs["snapshotKeep"]["value"] == 30
    assert outputs["aiGatewayEndpoint"]["value"].endswith(f"/moltworker-{stack}")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_dynamic_resources_see_no_change_on_a_second_run(stack: str) -> None:
    """What `pulumi preview` asks the dynamic providers after an unchanged second run."""
    providers = {
        "worker-deploy": WorkerDeployProvider(),
        "bucket-emptier": BucketEmptierProvider(),
    }
    first = {r.urn: r for r in run_program_full(stack).resources if r.dynamic_kind}
    second = {r.urn: r for r in run_program_full(stack).resources if r.dynamic_kind}
    assert first.keys() == second.keys() and first
    for urn, old in first.items():
        provider = providers[old.dynamic_kind or ""]
        # The state after the first run: its checked inputs, which create returns as outputs
        # (the deploy keeps no secret values there, only their hashes).
        olds = {k: v for k, v in provider.check({}, old.plain).inputs.items() if k != "secrets"}
        news = provider.check({}, second[urn].plain).inputs
        diff = provider.diff("id", olds, news)
        assert diff.changes is False, f"{urn}: {diff.replaces}"
    # And a changed build context is a change of the image fingerprint (and only then).
    changed = run_program_full(stack, {"openclawVersion": "2026.9.7"}).resources
    new = next(r for r in changed if r.dynamic_kind == "worker-deploy").plain
    old = next(r for r in first.values() if r.dynamic_kind == "worker-deploy").plain
    assert sorted(k for k in new if new[k] != old[k]) == ["image_fingerprint", "image_vars"]


def test_dynamic_providers_load_in_a_separate_process(tmp_path: Path) -> None:
    """The engine unpickles `__provider` in its own process, from the project's venv."""
    blobs = {
        res.dynamic_kind: unwrap(res.inputs["__provider"])
        for res in run("dev").resources
        if res.dynamic_kind
    }
    assert set(blobs) == {"worker-deploy", "bucket-emptier"}
    script = (
        "import base64, json, sys, dill\n"
        "blobs = json.loads(sys.stdin.read())\n"
        "print(json.dumps({k: type(dill.loads(base64.b64decode(v))).__name__"
        " for k, v in blobs.items()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(blobs),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the project: the class must come from the installed package
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == {
        "worker-deploy": "WorkerDeployProvider",
        "bucket-emptier": "BucketEmptierProvider",
    }
