"""The pack over whole program runs: the shipped examples pass, misconfigured stacks fail.

Misconfigurations the stack config can express are made with config overrides; the ones the
program itself refuses to produce (its settings loader or components raise) are made by
mutating the recorded resources, as a hand-edited program or a refactor would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra import settings, worker
from infra.settings import SettingsError
from policies.stack_profile import PRODUCTION_STACK
from tests.infra.harness import TEST_SECRETS, run_program_full
from tests.policies.policy_harness import (
    Finding,
    Recorded,
    StackRun,
    account_policy_config,
    evaluate,
    record,
)

BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
DEPLOY = "pulumi-python:dynamic/moltworker:WorkerDeploy"
APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
TOKEN = "cloudflare:index/accountToken:AccountToken"
GATEWAY = "cloudflare:index/aiGateway:AiGateway"


def mandatory(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "mandatory"]


def assert_fails_with(findings: list[Finding], policy: str, *fragments: str) -> None:
    """The mandatory violations are exactly `policy`'s, and one says every fragment."""
    failing = mandatory(findings)
    assert failing, "the misconfigured stack passed every mandatory rule"
    assert {f.policy for f in failing} == {policy}, [f"{f.policy}: {f.message}" for f in failing]
    assert any(all(x in f.message for x in fragments) for f in failing), [
        f.message for f in failing
    ]


# --- the shipped examples --------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_example_stack_passes_every_rule(stack: str) -> None:
    run = record(stack)
    findings = evaluate(run)
    assert findings == [], [f"{f.policy}: {f.message}" for f in findings]


def test_the_pack_and_the_program_agree_on_production_names() -> None:
    # The program refuses `ephemeral` on these names; the pack never treats them as ephemeral.
    assert PRODUCTION_STACK.pattern == settings.PROD_STACK.pattern


@pytest.mark.parametrize("name", sorted(worker.LOCAL_ONLY))
def test_every_local_only_binding_the_program_refuses_is_refused_by_the_pack(name: str) -> None:
    findings = _mutated("prod", lambda run: _set_var(run, name, "http://127.0.0.1:8788"))
    # LOCAL_ADMIN_TOKEN in plain text is also a plain-text secret; that rule may fire as well.
    assert any(f.policy == "no-dev-switches" and repr(name) in f.message for f in findings)


def test_examples_read_as_the_stacks_they_are() -> None:
    dev, prod = record("dev").profile, record("prod").profile
    assert (dev.ephemeral, dev.production, dev.debug_routes_marked) == (True, False, True)
    assert dev.workers_subdomain == "your-subdomain"
    assert (prod.ephemeral, prod.production, prod.debug_routes_marked) == (False, True, False)


# --- misconfigurations the stack config can express ------------------------------------------


def test_debug_routes_on_prod_are_refused() -> None:
    findings = evaluate(record("prod", {"debugRoutes": "true"}))
    assert_fails_with(findings, "no-dev-switches", "production stack 'prod'")


def test_five_container_instances_are_refused() -> None:
    findings = evaluate(record("prod", {"maxInstances": "5"}))
    assert_fails_with(findings, "container-bounded", "may run 5 instances", "bound of 1")


def test_a_raised_bound_in_the_pack_config_allows_them() -> None:
    run = record("prod", {"maxInstances": "5"})
    config = {**account_policy_config(), "container-bounded": {"maxInstances": 5}}
    assert mandatory(evaluate(run, config)) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("modelPrimary", "anthropic/sk-ant-api03-" + "Zx9" * 12),
        ("modelFallbacks", json.dumps(["openai/gpt-5", "openai/sk-proj-" + "Qw8" * 12])),
    ],
    ids=["modelPrimary", "modelFallbacks"],
)
def test_a_key_pasted_into_a_plain_setting_is_refused(key: str, value: str) -> None:
    findings = evaluate(record("dev", {key: value}))
    assert_fails_with(findings, "secrets-in-secret-bindings", "is plain_text", "API key")
    assert all(value not in f.message for f in findings)


def test_never_sleeping_dev_stack_gets_a_cost_warning_only() -> None:
    findings = evaluate(record("dev", {"sleepAfter": "never"}))
    assert mandatory(findings) == []
    assert [f.policy for f in findings] == ["sleep-never-cost"]
    assert "non-production stack 'dev'" in findings[0].message


def test_debug_routes_on_a_stack_not_marked_for_them_are_refused() -> None:
    run = record("dev", {"debugRoutes": "false"})
    assert mandatory(evaluate(run)) == []
    _set_var(run, "DEBUG_ROUTES", "true")
    assert_fails_with(evaluate(run), "no-dev-switches", "not marked for debug routes")


# --- misconfigurations the program refuses, so the recorded resources are mutated ------------


def test_the_program_refuses_to_mark_prod_ephemeral() -> None:
    with pytest.raises(SettingsError, match="production stack"):
        run_program_full("prod", {"ephemeral": "true"})


def _mutated(stack: str, mutate: Callable[[StackRun], None]) -> list[Finding]:
    run = record(stack)
    mutate(run)
    return evaluate(run)


def _deploy(run: StackRun) -> dict[str, Any]:
    return run.one(DEPLOY).props


def _set_var(run: StackRun, name: str, text: str) -> None:
    _deploy(run)["vars"][name] = text


def _unprotect_bucket(run: StackRun) -> None:
    run.one(BUCKET).protect = False


def _rename_bucket(run: StackRun) -> None:
    # As a refactor of the naming scheme would: the token follows the bucket's name.
    run.one(BUCKET).props["name"] = "moltworker-production-data"
    policy = run.one(TOKEN, "storage-token").props["policies"][0]
    policy["resources"] = policy["resources"].replace(
        "moltworker-prod-data", "moltworker-production-data"
    )


def _expire_snapshots(run: StackRun) -> None:
    rules = run.one("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle").props["rules"]
    expire = next(r for r in rules if "deleteObjectsTransition" in r)
    expire["conditions"]["prefix"] = "snapshots/"


def _expose_workers_dev(run: StackRun) -> None:
    _deploy(run)["workers_dev"] = True


def _attach_emptier(run: StackRun) -> None:
    # The dev example's emptier, moved onto the prod stack.
    dev_emptier = next(r for r in record("dev").resources if "secret_access_key" in r.props)
    dev_emptier.props["bucket"] = "moltworker-prod-data"
    run.resources.append(dev_emptier)


def _publish_bucket(run: StackRun) -> None:
    run.resources.append(
        Recorded(
            "cloudflare:index/r2ManagedDomain:R2ManagedDomain",
            "storage-public",
            "urn:pulumi:prod::moltworker::cloudflare:index/r2ManagedDomain:R2ManagedDomain::storage-public",
            {"accountId": "0" * 32, "bucketName": "moltworker-prod-data", "enabled": True},
            False,
            "",
            [],
        )
    )


def _widen_storage_token(run: StackRun) -> None:
    policy = run.one(TOKEN, "storage-token").props["policies"][0]
    policy["resources"] = json.dumps({"com.cloudflare.api.account." + "0" * 32: "*"})


def _drop_debug_from_access(run: StackRun) -> None:
    app = run.one(APP).props
    app["destinations"] = [d for d in app["destinations"] if "/debug" not in d["uri"]]


def _admit_everyone(run: StackRun) -> None:
    run.one(POLICY, "access-admins").props["includes"] = [{"everyone": {}}]


def _open_gateway(run: StackRun) -> None:
    run.one(GATEWAY).props["authentication"] = False


def _unpin_image(run: StackRun) -> None:
    # A prebuilt image by tag instead of the project's Dockerfile.
    _deploy(run)["dockerfile"] = "registry.example.com/someone/openclaw:latest"


def _float_openclaw(run: StackRun) -> None:
    _deploy(run)["image_vars"]["OPENCLAW_VERSION"] = "latest"


def _local_backend(run: StackRun) -> None:
    _set_var(run, "MOLT_LOCAL_BACKEND", "1")


def _bake_key_into_image(run: StackRun) -> None:
    _deploy(run)["image_vars"]["ANTHROPIC_API_KEY"] = TEST_SECRETS["moltworker:anthropicApiKey"]


def _plain_text_secret(run: StackRun) -> None:
    deploy = _deploy(run)
    deploy["secret_names"].remove("ANTHROPIC_API_KEY")
    deploy["vars"]["ANTHROPIC_API_KEY"] = TEST_SECRETS["moltworker:anthropicApiKey"]


@pytest.mark.parametrize(
    ("mutate", "policy", "fragment"),
    [
        (_unprotect_bucket, "data-bucket-protected", "is not protected"),
        (_rename_bucket, "data-bucket-protected", "not the stack's stable name"),
        (_expire_snapshots, "data-bucket-protected", "under prefix 'snapshots/'"),
        (_attach_emptier, "data-bucket-protected", "has bucket emptier 'storage-emptier'"),
        (_publish_bucket, "bucket-never-public", "public r2.dev URL"),
        (_widen_storage_token, "tokens-scoped", "only run the AI Gateway"),
        (_drop_debug_from_access, "access-protects-admin", "agent.example.com/debug/*"),
        (_admit_everyone, "access-protects-admin", "lets everyone in"),
        (_expose_workers_dev, "access-protects-admin", "turn its workers.dev subdomain off"),
        (_open_gateway, "ai-gateway-authenticated", "accepts unauthenticated requests"),
        (_unpin_image, "pinned-versions", "not pinned by digest"),
        (_float_openclaw, "pinned-versions", "builds OpenClaw 'latest'"),
        (_local_backend, "no-dev-switches", "'MOLT_LOCAL_BACKEND'"),
        (_plain_text_secret, "secrets-in-secret-bindings", "'ANTHROPIC_API_KEY' is plain_text"),
        (_bake_key_into_image, "secrets-in-secret-bindings", "build argument 'ANTHROPIC_API_KEY'"),
    ],
)
def test_mutated_prod_stack_is_refused(
    mutate: Callable[[StackRun], None], policy: str, fragment: str
) -> None:
    findings = _mutated("prod", mutate)
    assert_fails_with(findings, policy, fragment)
    leaked = [f.message for f in findings for v in TEST_SECRETS.values() if v in f.message]
    assert leaked == [], "a violation message repeats a secret value"


def test_an_ephemeral_stack_may_drop_protection() -> None:
    assert mandatory(_mutated("dev", _unprotect_bucket)) == []
