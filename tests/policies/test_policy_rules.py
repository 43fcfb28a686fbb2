"""Each rule: a compliant baseline, then one mutation per violation it must report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from policies import rules
from policies.rules import ResourceCheck
from policies.stack_profile import StackProfile
from tests.policies.policy_fakes import (
    ACCOUNT,
    GATEWAY_RUN,
    OTHER_ACCOUNT,
    POLICY_TYPE,
    R2_READ,
    R2_WRITE,
    TOKEN_POLICY_CONFIG,
    Res,
    Violations,
    account_scope,
    binding,
    bucket_scope,
    compliant_stack,
    find,
    stack_args,
    token,
    worker_bindings,
    worker_deploy,
)

PROD = StackProfile.of("moltworker", "prod")
DEV = StackProfile.of("moltworker", "dev", ephemeral=True, workers_subdomain="your-subdomain")


def check_resource(
    rule: ResourceCheck,
    res: Res,
    stack: StackProfile = PROD,
    config: Mapping[str, Any] | None = None,
) -> Violations:
    found = Violations()
    rule(res.resource_args(config), found, stack)
    return found


def check_stack_resources(
    resources: list[Res], stack: StackProfile = PROD, config: Mapping[str, Any] | None = None
) -> Violations:
    """Every resource rule over every resource: what a whole stack reports."""
    found = Violations()
    for rule in rules.RULES:
        if isinstance(rule, rules.ResourceRule):
            for res in resources:
                rule.check(res.resource_args(config), found, stack)
    return found


def only(found: Violations, *fragments: str) -> None:
    """Exactly one violation, and its message says each fragment."""
    assert len(found) == 1, f"expected one violation, got {found.messages}"
    for fragment in fragments:
        assert fragment in found.messages[0], found.messages[0]


# --- baselines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "custom_domain"),
    [(PROD, True), (DEV, False), (StackProfile.of("moltworker", "staging"), True)],
)
def test_compliant_stacks_pass_every_rule(stack: StackProfile, custom_domain: bool) -> None:
    resources = compliant_stack(stack.stack, custom_domain=custom_domain)
    found = check_stack_resources(resources, stack)
    args = stack_args(resources, TOKEN_POLICY_CONFIG)
    for rule in rules.RULES:
        if isinstance(rule, rules.StackRule):
            rule.check(args, found, stack)
    assert found.messages == []


# --- data-bucket-protected -------------------------------------------------------------------


def bucket(stack: str = "prod", **changes: Any) -> Res:
    res = find(compliant_stack(stack), "storage-bucket")
    for key, value in changes.items():
        setattr(res, key, value)
    return res


def test_unprotected_bucket_is_refused() -> None:
    found = check_resource(rules.data_bucket_protected, bucket(protect=False))
    only(found, "R2 bucket 'storage-bucket'", "is not protected", "protect=True")


def test_delete_before_replace_on_the_bucket_is_refused() -> None:
    found = check_resource(rules.data_bucket_protected, bucket(delete_before_replace=True))
    only(found, "delete_before_replace", "deletes the data before")


def test_renamed_bucket_is_refused() -> None:
    renamed = bucket()
    renamed.props["name"] = "moltworker-prod-data-v2"
    found = check_resource(rules.data_bucket_protected, renamed)
    only(found, "'moltworker-prod-data-v2'", "stable name 'moltworker-prod-data'", "replaces")


def test_configured_bucket_name_template_is_the_expected_name() -> None:
    renamed = bucket()
    renamed.props["name"] = "agent-prod"
    config = {"bucketName": "agent-{stack}"}
    assert check_resource(rules.data_bucket_protected, renamed, config=config) == []


def test_unprotected_snapshot_key_is_refused() -> None:
    key = find(compliant_stack(), "secrets-snapshot-key")
    key.protect = False
    found = check_resource(rules.data_bucket_protected, key)
    only(found, "snapshot key 'secrets-snapshot-key'", "is not protected")


def test_ephemeral_stack_may_leave_its_bucket_unprotected_and_renamed() -> None:
    res = bucket("dev", protect=False)
    res.props["name"] = "scratch"
    assert check_resource(rules.data_bucket_protected, res, DEV) == []


def test_production_named_stack_is_never_ephemeral() -> None:
    marked = StackProfile.of("moltworker", "production-eu", ephemeral=True)
    assert not marked.ephemeral
    res = bucket("production-eu", protect=False)
    found = check_resource(rules.data_bucket_protected, res, marked)
    assert any("is not protected" in m for m in found.messages)


def lifecycle(prefix: str, *, enabled: bool = True) -> Res:
    res = find(compliant_stack(), "storage-lifecycle")
    rule = res.props["rules"][1]
    rule["conditions"]["prefix"] = prefix
    rule["enabled"] = enabled
    return res


@pytest.mark.parametrize("prefix", ["", "snapshots/", "tras"])
def test_lifecycle_rule_deleting_live_data_is_refused(prefix: str) -> None:
    found = check_resource(rules.data_bucket_protected, lifecycle(prefix))
    only(found, "Lifecycle rule 'expire-trash'", f"under prefix {prefix!r}", "trash/")


def test_disabled_or_trash_only_lifecycle_rules_pass() -> None:
    assert check_resource(rules.data_bucket_protected, lifecycle("", enabled=False)) == []
    assert check_resource(rules.data_bucket_protected, lifecycle("trash/old/")) == []


def emptier() -> Res:
    inputs = {"endpoint": "https://r2", "bucket": "moltworker-prod-data"}
    inputs |= {"access_key_id": "id", "secret_access_key": "key"}
    return Res("pulumi-python:dynamic/moltworker:BucketEmptier", "storage-emptier", inputs)


def test_a_bucket_emptier_on_a_kept_stack_is_refused() -> None:
    found = check_resource(rules.data_bucket_protected, emptier())
    only(found, "bucket emptier 'storage-emptier'", "'moltworker-prod-data'", "ephemeral: true")


def test_an_ephemeral_stack_may_empty_its_bucket() -> None:
    assert check_resource(rules.data_bucket_protected, emptier(), DEV) == []


def test_ephemeral_stack_may_expire_anything() -> None:
    assert check_resource(rules.data_bucket_protected, lifecycle(""), DEV) == []


@pytest.mark.parametrize(
    ("stack", "production"),
    [
        ("prod", True),
        ("production", True),
        ("prod-eu", True),
        ("prod_eu", True),
        ("production.2", True),
        ("produce", False),
        ("preprod", False),
        ("dev", False),
        ("pr-12", False),
    ],
)
def test_production_stack_names(stack: str, production: bool) -> None:
    assert StackProfile.of("moltworker", stack).production is production


def test_unknown_bucket_name_is_left_to_the_engine() -> None:
    res = bucket()
    res.props["name"] = UNKNOWN_STRING_VALUE
    # The engine reports an unknown value during preview as "can't run policy"; a validator must
    # not swallow it into a pass.
    with pytest.raises(UnknownValueError):
        check_resource(rules.data_bucket_protected, res)


# --- bucket-never-public ---------------------------------------------------------------------


def managed_domain(enabled: bool) -> Res:
    return Res(
        "cloudflare:index/r2ManagedDomain:R2ManagedDomain",
        "public-dev-url",
        {"accountId": ACCOUNT, "bucketName": "moltworker-prod-data", "enabled": enabled},
    )


def test_enabled_r2_dev_url_is_refused() -> None:
    found = check_resource(rules.bucket_never_public, managed_domain(True))
    only(found, "'public-dev-url'", "public r2.dev URL", "'moltworker-prod-data'")


def test_disabled_r2_dev_url_passes() -> None:
    assert check_resource(rules.bucket_never_public, managed_domain(False)) == []


def test_custom_domain_on_the_bucket_is_refused() -> None:
    domain = Res(
        "cloudflare:index/r2CustomDomain:R2CustomDomain",
        "files",
        {
            "accountId": ACCOUNT,
            "bucketName": "moltworker-prod-data",
            "domain": "files.example.com",
            "enabled": True,
            "zoneId": ACCOUNT,
        },
    )
    found = check_resource(rules.bucket_never_public, domain)
    only(found, "custom domain 'files'", "'files.example.com'", "remove the R2CustomDomain")


# --- tokens-scoped ---------------------------------------------------------------------------


def token_findings(
    extra: Res, config: Mapping[str, Any] | None = TOKEN_POLICY_CONFIG
) -> Violations:
    resources = [res for res in compliant_stack() if res.name not in ("storage-token", "ai-token")]
    found = Violations()
    rules.tokens_scoped(stack_args([*resources, extra], config), found, PROD)
    return found


def test_bucket_token_for_the_stacks_bucket_passes() -> None:
    ok = token("t", bucket_scope("moltworker-prod-data"), [R2_WRITE])
    assert token_findings(ok) == []


def test_a_bucket_group_the_program_never_requests_is_refused_by_default() -> None:
    # The program asks only for Item Write (contract.PERMISSION_GROUPS); Read is not needed.
    found = token_findings(token("t", bucket_scope("moltworker-prod-data"), [R2_WRITE, R2_READ]))
    only(found, "API token 't' policy #1", f"gives permission groups ['{R2_READ}'] on a bucket")
    widened = {**TOKEN_POLICY_CONFIG, "r2PermissionGroupIds": [R2_WRITE, R2_READ]}
    both = token("t", bucket_scope("moltworker-prod-data"), [R2_WRITE, R2_READ])
    assert token_findings(both, widened) == []


def test_token_for_another_bucket_is_refused() -> None:
    found = token_findings(token("t", bucket_scope("someone-elses-data"), [R2_WRITE]))
    only(found, "API token 't' policy #1", "bucket 'someone-elses-data'", "not this stack's")
    assert found[0][1] is not None and found[0][1].endswith("::t")


def test_token_for_the_same_bucket_name_in_another_account_is_refused() -> None:
    scope = bucket_scope("moltworker-prod-data", OTHER_ACCOUNT)
    only(token_findings(token("t", scope, [R2_WRITE])), f"of account {OTHER_ACCOUNT}")


def test_extra_permission_group_on_a_bucket_token_is_refused() -> None:
    found = token_findings(token("t", bucket_scope("moltworker-prod-data"), [R2_WRITE, "abc"]))
    only(found, "permission groups ['abc'] on a bucket")


def test_account_wide_r2_token_is_refused() -> None:
    found = token_findings(token("t", account_scope(), [R2_WRITE]))
    only(found, f"account-wide permission groups ['{R2_WRITE}']", "only run the AI Gateway")


def test_zone_token_is_refused() -> None:
    scope = '{"com.cloudflare.api.account.zone.11111111111111111111111111111111": "*"}'
    only(token_findings(token("t", scope, [R2_WRITE])), "grants zone permissions")


def test_nested_wildcard_over_all_zones_is_refused() -> None:
    scope = json.dumps(
        {f"com.cloudflare.api.account.{ACCOUNT}": {"com.cloudflare.api.account.zone.*": "*"}}
    )
    only(token_findings(token("t", scope, [GATEWAY_RUN])), "nests a wildcard scope")


def test_wildcard_account_is_refused() -> None:
    scope = '{"com.cloudflare.api.account.*": "*"}'
    only(token_findings(token("t", scope, [GATEWAY_RUN])), "a wildcard over accounts")


def test_user_scope_is_refused() -> None:
    scope = '{"com.cloudflare.api.user.0123": "*"}'
    only(token_findings(token("t", scope, [R2_WRITE])), "user-wide permissions")


def test_gateway_token_in_another_account_is_refused() -> None:
    found = token_findings(token("t", account_scope(OTHER_ACCOUNT), [GATEWAY_RUN]))
    only(found, f"grants account {OTHER_ACCOUNT}, not the stack's account")


def test_account_wide_token_without_the_gateway_group_config_fails_closed() -> None:
    found = token_findings(token("t", account_scope(), [GATEWAY_RUN]), config=None)
    only(found, "cannot tell whether they are 'AI Gateway Run'", "aiGatewayRunPermissionGroupIds")


def test_unreadable_resources_are_refused() -> None:
    only(token_findings(token("t", "not json", [R2_WRITE])), "no readable `resources`")


def test_policy_without_permission_groups_is_refused() -> None:
    only(
        token_findings(token("t", bucket_scope("moltworker-prod-data"), [])), "grants no permission"
    )


def test_deny_policies_only_take_away() -> None:
    deny = token("t", account_scope(), [R2_WRITE], effect="deny")
    assert token_findings(deny) == []


def test_api_tokens_are_checked_too() -> None:
    user_token = token("t", account_scope(), [R2_WRITE])
    user_token.type = "cloudflare:index/apiToken:ApiToken"
    only(token_findings(user_token), "account-wide permission groups")


# --- access-protects-admin -------------------------------------------------------------------


def access_findings(resources: list[Res], stack: StackProfile = PROD) -> Violations:
    found = Violations()
    rules.access_protects_admin(stack_args(resources), found, stack)
    return found


def test_missing_debug_destination_is_refused() -> None:
    resources = compliant_stack()
    app = find(resources, "access-app")
    app.props["destinations"] = [d for d in app.props["destinations"] if "/debug" not in d["uri"]]
    only(access_findings(resources), "No Access application covers agent.example.com/debug/*")


def test_exact_path_without_wildcard_does_not_cover_the_subtree() -> None:
    resources = compliant_stack()
    app = find(resources, "access-app")
    app.props["destinations"] = [
        d for d in app.props["destinations"] if not d["uri"].endswith("/*")
    ]
    found = access_findings(resources)
    assert len(found) == 3, found.messages


def test_whole_host_destination_covers_every_admin_path() -> None:
    resources = compliant_stack()
    find(resources, "access-app").props["destinations"] = [
        {"type": "public", "uri": "agent.example.com"}
    ]
    assert access_findings(resources) == []


def test_destination_on_another_host_does_not_count() -> None:
    resources = compliant_stack()
    find(resources, "access-app").props["destinations"] = [
        {"type": "public", "uri": f"other.example.com{p}/*"} for p in ("/_admin", "/api", "/debug")
    ]
    assert len(access_findings(resources)) == 3


def test_everyone_allow_policy_is_refused() -> None:
    resources = compliant_stack()
    find(resources, "access-admins").props["includes"] = [{"everyone": {}}]
    found = access_findings(resources)
    assert len(found) == 2, found.messages
    assert "lets everyone in through policy 'access-admins'" in found.messages[0]
    assert "has no allow policy for named people" in found.messages[1]
    assert found[0][1] is not None and found[0][1].endswith("::access-app")


def attach(resources: list[Res], policy: Res) -> list[Res]:
    app = find(resources, "access-app")
    app.props["policies"].append({"id": f"{policy.name}-id", "precedence": 9})
    app.property_dependencies["policies"].append(policy.name)
    return [*resources, policy]


def test_a_bypass_policy_next_to_a_named_allow_is_still_refused() -> None:
    bypass = Res(
        POLICY_TYPE,
        "access-open",
        {"decision": "bypass", "includes": [{"ip": {"ip": "10.0.0.0/8"}}]},
    )
    only(access_findings(attach(compliant_stack(), bypass)), "has bypass policy 'access-open'")


def test_everyone_limited_by_a_required_identity_is_a_named_allow() -> None:
    resources = compliant_stack()
    admins = find(resources, "access-admins")
    admins.props["includes"] = [{"everyone": {}}]
    admins.props["requires"] = [{"email_domain": {"domain": "example.com"}}]
    assert access_findings(resources) == []


def test_an_allow_by_network_alone_names_nobody() -> None:
    resources = compliant_stack()
    find(resources, "access-admins").props["includes"] = [{"ip": {"ip": "203.0.113.0/24"}}]
    only(access_findings(resources), "has no allow policy for named people")


def test_an_allow_mixing_named_people_and_everyone_is_refused() -> None:
    resources = compliant_stack()
    admins = find(resources, "access-admins")
    admins.props["includes"].append({"everyone": {}})
    found = access_findings(resources)
    assert len(found) == 2, found.messages
    assert "lets everyone in through policy 'access-admins'" in found.messages[0]


def test_service_token_policy_alone_is_not_an_admin_allow() -> None:
    resources = compliant_stack()
    app = find(resources, "access-app")
    app.props["policies"] = [{"id": "ci-policy-id", "precedence": 1}]
    app.property_dependencies["policies"] = ["access-ci"]
    only(access_findings(resources), "has no allow policy for named people")


def test_policies_that_cannot_be_traced_are_refused() -> None:
    resources = compliant_stack()
    find(resources, "access-app").property_dependencies = {}
    only(access_findings(resources), "refers to Access policies this pack cannot find")


def test_dependencies_stand_in_for_missing_property_dependencies() -> None:
    resources = compliant_stack()
    app = find(resources, "access-app")
    app.dependencies = app.property_dependencies.pop("policies")
    assert access_findings(resources) == []
    find(resources, "access-admins").props["includes"] = [{"everyone": {}}]
    assert "lets everyone in" in access_findings(resources).messages[0]


def test_inline_policies_are_judged_too() -> None:
    resources = compliant_stack()
    app = find(resources, "access-app")
    app.props["policies"] = [{"decision": "allow", "name": "open", "includes": [{"everyone": {}}]}]
    app.property_dependencies = {}
    found = access_findings(resources)
    assert "lets everyone in through policy 'open'" in found.messages[0]


def test_workers_dev_hostname_must_be_covered() -> None:
    resources = compliant_stack("dev", custom_domain=False)
    assert access_findings(resources, DEV) == []
    find(resources, "access-app").props["destinations"] = [
        {"type": "public", "uri": f"{'agent.example.com'}{p}/*"}
        for p in ("/_admin", "/api", "/debug")
    ]
    found = access_findings(resources, DEV)
    assert len(found) == 3
    assert "moltworker-dev.your-subdomain.workers.dev/_admin/*" in found.messages[0]


def test_workers_dev_without_the_subdomain_config_fails_closed() -> None:
    resources = compliant_stack("dev", custom_domain=False)
    unknown = StackProfile.of("moltworker", "dev", ephemeral=True)
    only(access_findings(resources, unknown), "no `workersSubdomain` config")


def _without_domain(resources: list[Res]) -> list[Res]:
    find(resources, "worker-deploy").props.update(custom_domain="", zone_id="")
    return resources


def test_route_and_script_subdomain_hostnames_must_be_covered() -> None:
    resources = _without_domain(compliant_stack())
    route = Res(
        "cloudflare:index/workersRoute:WorkersRoute",
        "worker-route",
        {"pattern": "admin.example.com/*", "script": "moltworker-prod", "zoneId": ACCOUNT},
    )
    subdomain = Res(
        "cloudflare:index/workersScriptSubdomain:WorkersScriptSubdomain",
        "worker-subdomain",
        {"accountId": ACCOUNT, "scriptName": "moltworker-prod", "enabled": True},
    )
    profile = StackProfile.of("moltworker", "prod", workers_subdomain="acme")
    hosts, problems = rules.worker_hostnames(
        stack_args([*resources, route, subdomain]).resources, profile
    )
    assert hosts == {"admin.example.com", "moltworker-prod.acme.workers.dev"}
    assert problems == []
    found = access_findings([*resources, route, subdomain], profile)
    assert len(found) == 6, found.messages  # three admin paths on each uncovered host


def test_stack_without_any_worker_hostname_is_refused() -> None:
    resources = _without_domain(compliant_stack())
    only(access_findings(resources), "serves no Worker hostname")


def test_no_access_application_at_all_is_refused() -> None:
    resources = [r for r in compliant_stack() if r.name != "access-app"]
    assert len(access_findings(resources)) == 3


# --- no-dev-switches -------------------------------------------------------------------------


def version(stack: str = "prod", *extra: dict[str, Any], **plain: str) -> Res:
    """The stack's Worker deploy with these extra bindings and var overrides."""
    deploy = worker_deploy(stack, [*worker_bindings(stack, **plain), *extra])
    deploy.stack = stack
    return deploy


def test_local_backend_switch_is_refused() -> None:
    found = check_resource(
        rules.no_dev_switches, version("prod", binding("MOLT_LOCAL_BACKEND", "plain_text", "1"))
    )
    only(found, "'MOLT_LOCAL_BACKEND'", "local `make dev` backend")


def test_local_urls_are_refused_even_as_secrets() -> None:
    found = check_resource(
        rules.no_dev_switches, version("dev", binding("LOCAL_ADMIN_TOKEN", "secret_text", "x")), DEV
    )
    only(found, "'LOCAL_ADMIN_TOKEN'")


def test_auth_bypass_switch_is_refused() -> None:
    found = check_resource(
        rules.no_dev_switches,
        version("prod", binding("ACCESS_BYPASS_FOR_E2E", "plain_text", "true")),
    )
    only(found, "test-mode switch that weakens authentication")


def test_debug_routes_on_production_are_refused() -> None:
    found = check_resource(rules.no_dev_switches, version("prod", DEBUG_ROUTES="true"))
    only(found, "enables /debug/* on production stack 'prod'", "debugRoutes false")


def test_debug_routes_on_an_unmarked_stack_are_refused() -> None:
    found = check_resource(
        rules.no_dev_switches,
        version("staging", DEBUG_ROUTES="TRUE"),
        StackProfile.of("moltworker", "staging"),
    )
    only(found, "stack 'staging' is not marked for debug routes")


def test_debug_routes_on_a_marked_development_stack_pass() -> None:
    marked = StackProfile.of("moltworker", "dev", ephemeral=True, debug_routes=True)
    assert check_resource(rules.no_dev_switches, version("dev", DEBUG_ROUTES="true"), marked) == []


def test_production_cannot_be_marked_for_debug_routes() -> None:
    assert not StackProfile.of("moltworker", "prod", debug_routes=True).debug_routes_marked


def test_workers_script_bindings_are_checked_too() -> None:
    bindings = [*worker_bindings("prod"), binding("MOLT_LOCAL_BACKEND", "plain_text", "1")]
    for kind in ("workersScript:WorkersScript", "workerVersion:WorkerVersion"):
        script = Res(f"cloudflare:index/{kind}", "worker-script", {"bindings": bindings})
        assert len(check_resource(rules.no_dev_switches, script)) == 1


# --- secrets-in-secret-bindings --------------------------------------------------------------

FAKE_ANTHROPIC = "sk-ant-api03-" + "A1b2C3d4" * 6
FAKE_TELEGRAM = "123456789:" + "AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr"
FAKE_SLACK_APP = "xapp-1-A0123456789-0123456789012-" + "ab" * 16


def test_secret_named_binding_in_plain_text_is_refused() -> None:
    res = version("prod", binding("OPENAI_API_KEY", "plain_text", "configured-elsewhere"))
    found = check_resource(rules.secrets_in_secret_bindings, res)
    only(found, "'OPENAI_API_KEY' is plain_text", "its name says it holds a secret", "secret_text")


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (FAKE_ANTHROPIC, "an Anthropic API key"),
        (FAKE_TELEGRAM, "a Telegram bot token"),
        (FAKE_SLACK_APP, "a Slack app-level token"),
        ("c2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZy1lbm91Z2gtdG8tbWF0dGVy", "high-entropy string"),
        ("ab12" * 16, "64 random-looking hex digits"),
    ],
    ids=["anthropic", "telegram", "slack-app", "base64", "hex"],
)
def test_secret_shaped_value_under_an_innocent_name_is_refused(value: str, described: str) -> None:
    res = version("prod", MODEL_PRIMARY=value)
    found = check_resource(rules.secrets_in_secret_bindings, res)
    only(found, "'MODEL_PRIMARY' is plain_text", described)
    assert value not in found.messages[0], "a violation must not quote the secret"


def test_secret_inside_a_json_binding_is_refused() -> None:
    res = version("prod", binding("CHANNELS", "json", json.dumps({"telegram": FAKE_TELEGRAM})))
    only(check_resource(rules.secrets_in_secret_bindings, res), "'CHANNELS' is json")


@pytest.mark.parametrize(
    ("name", "value", "described"),
    [
        ("ANTHROPIC_API_KEY", "configured", "its name says it holds a secret"),
        ("EXTRA", FAKE_TELEGRAM, "a Telegram bot token"),
    ],
    ids=["by-name", "by-value"],
)
def test_secret_build_argument_is_refused(name: str, value: str, described: str) -> None:
    image = find(compliant_stack(), "worker-deploy")
    image.props["image_vars"][name] = value
    found = check_resource(rules.secrets_in_secret_bindings, image)
    only(found, f"build argument {name!r}", described, "image history")
    assert value not in found.messages[0]


def test_the_openclaw_version_build_argument_is_no_secret() -> None:
    image = find(compliant_stack(), "worker-deploy")
    assert check_resource(rules.secrets_in_secret_bindings, image) == []


def test_secret_text_bindings_may_hold_anything() -> None:
    res = version("prod", binding("EXTRA_TOKEN", "secret_text", FAKE_ANTHROPIC))
    assert check_resource(rules.secrets_in_secret_bindings, res) == []


# --- ai-gateway-authenticated ----------------------------------------------------------------


@pytest.mark.parametrize("authentication", [False, None])
def test_unauthenticated_gateway_is_refused(authentication: bool | None) -> None:
    gateway = find(compliant_stack(), "ai-gateway")
    if authentication is None:
        del gateway.props["authentication"]
    else:
        gateway.props["authentication"] = authentication
    found = check_resource(rules.ai_gateway_authenticated, gateway)
    only(
        found,
        "AI Gateway 'ai-gateway' ('moltworker-prod') accepts unauthenticated",
        "authentication=True",
    )


# --- container-bounded -----------------------------------------------------------------------


def container(**changes: Any) -> Res:
    app = find(compliant_stack(), "worker-deploy")
    app.props.update(changes)
    return app


def test_more_instances_than_the_bound_are_refused() -> None:
    found = check_resource(rules.container_bounded, container(max_instances=5))
    only(found, "may run 5 instances, above this pack's bound of 1", "maxInstances 1")


def test_a_configured_bound_allows_more() -> None:
    config = {"maxInstances": 5}
    assert check_resource(rules.container_bounded, container(max_instances=5), config=config) == []
    only(
        check_resource(rules.container_bounded, container(max_instances=6), config=config),
        "bound of 5",
    )


@pytest.mark.parametrize("bound", [5.0, "5", True, 0])
def test_the_bound_reads_json_numbers_and_ignores_nonsense(bound: object) -> None:
    found = check_resource(
        rules.container_bounded, container(max_instances=5), config={"maxInstances": bound}
    )
    assert (found == []) is (bound == 5.0)


@pytest.mark.parametrize("value", [None, "1", 1.5, True])
def test_missing_or_malformed_max_instances_is_refused(value: Any) -> None:
    only(
        check_resource(rules.container_bounded, container(max_instances=value)),
        "no whole-number max_instances",
    )


def test_other_dynamic_resources_are_not_containers() -> None:
    emptier = Res(
        "pulumi-python:dynamic:Resource", "storage-emptier", {"bucket": "b", "endpoint": "e"}
    )
    assert check_resource(rules.container_bounded, emptier) == []
    assert check_resource(rules.pinned_versions, emptier) == []


def test_an_unnamed_dynamic_container_is_recognised_by_its_inputs() -> None:
    app = container(max_instances=3)
    app.type = "pulumi-python:dynamic:Resource"
    assert len(check_resource(rules.container_bounded, app)) == 1


# --- pinned-versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        f"registry.cloudflare.com/{ACCOUNT}/moltworker-prod:2026.9.6-abc",
        f"registry.cloudflare.com/{ACCOUNT}/moltworker-prod:latest",
        f"registry.cloudflare.com/{ACCOUNT}/moltworker-prod@sha256:abc",
    ],
)
def test_image_not_pinned_by_digest_is_refused(image: str) -> None:
    found = check_resource(rules.pinned_versions, container(dockerfile=image))
    only(found, "is not pinned by digest", "@sha256:")


def test_an_image_named_by_digest_or_built_from_the_dockerfile_passes() -> None:
    pinned = f"registry.cloudflare.com/{ACCOUNT}/moltworker-prod@sha256:{'a' * 64}"
    assert check_resource(rules.pinned_versions, container(dockerfile=pinned)) == []
    assert check_resource(rules.pinned_versions, container()) == []
    app = Res(
        "pulumi-python:dynamic/moltworker:ContainerApp",
        "sandbox-app",
        {"image": pinned.replace("@", ":tag@"), "max_instances": 1},
    )
    assert check_resource(rules.pinned_versions, app) == []


@pytest.mark.parametrize(
    "openclaw", ["latest", "^2026.9.6", "~2026.9", "2026.9", ">=2026.9.6", "2026.x"]
)
def test_openclaw_version_that_is_not_exact_is_refused(openclaw: str) -> None:
    image = find(compliant_stack(), "worker-deploy")
    image.props["image_vars"] = {"OPENCLAW_VERSION": openclaw}
    only(
        check_resource(rules.pinned_versions, image),
        f"builds OpenClaw {openclaw!r}",
        "exact version",
    )


@pytest.mark.parametrize("openclaw", ["2026.9.6", "2026.10.1-beta.2"])
def test_exact_openclaw_versions_pass(openclaw: str) -> None:
    image = find(compliant_stack(), "worker-deploy")
    image.props["image_vars"] = {"OPENCLAW_VERSION": openclaw}
    assert check_resource(rules.pinned_versions, image) == []


# --- sleep-never-cost ------------------------------------------------------------------------


def test_never_sleeping_container_on_a_non_production_stack_is_flagged() -> None:
    found = check_resource(rules.sleep_never_cost, version("dev", SLEEP_AFTER="never"), DEV)
    only(found, "non-production stack 'dev'", "sleepAfter 10m")


def test_never_sleeping_container_in_production_is_not_flagged() -> None:
    assert check_resource(rules.sleep_never_cost, version("prod", SLEEP_AFTER="never")) == []


def test_sleep_never_is_the_only_advisory_rule() -> None:
    advisory = [rule.name for rule in rules.RULES if rule.level.value == "advisory"]
    assert advisory == ["sleep-never-cost"]
