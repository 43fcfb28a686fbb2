"""The validators of the moltworker policy pack.

Each rule is a plain function over pulumi_policy's own argument objects plus the
`StackProfile` of the stack under review, so tests call it directly with constructed arguments
and collect what it reports. Every message names the resource and says how to fix it; none
quotes a secret value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies import resources as r
from policies.secret_shapes import is_secret_name, secret_shape
from policies.stack_profile import StackProfile

# Cloudflare's permission groups for objects in named buckets ("Workers R2 Storage Bucket Item
# Read" / "... Write"); the ids are global and published in Cloudflare's R2 documentation.
R2_BUCKET_ITEM_READ = "6a018a9f2fc74eb6b293b0c548f38b39"
R2_BUCKET_ITEM_WRITE = "2efd5506f9c8494dacb1fa10a3e7d5b6"
R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket."
ACCOUNT_SCOPE = "com.cloudflare.api.account."
ZONE_SCOPE = "com.cloudflare.api.account.zone."
USER_SCOPE = "com.cloudflare.api.user."
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
# <account>_<jurisdiction>_<bucket>: bucket names have no '_', jurisdictions are words.
_R2_BUCKET_KEY = re.compile(r"^([0-9a-f]{32})_([a-z]+)_([a-z0-9-]+)$")

ADMIN_PATHS = ("/_admin", "/api", "/debug")
_OPEN_DECISIONS = frozenset({"allow", "bypass", "non_identity"})

LOCAL_BACKEND = "MOLT_LOCAL_BACKEND"
DEBUG_ROUTES = "DEBUG_ROUTES"
SLEEP_AFTER = "SLEEP_AFTER"
_TRUTHY = frozenset({"true", "1", "yes", "on"})
# Names of switches that turn the Worker's authentication off for tests.
_AUTH_BYPASS = re.compile(
    r"(AUTH_BYPASS|BYPASS_AUTH|BYPASS_ACCESS|ACCESS_BYPASS|SKIP_AUTH|DISABLE_AUTH|NO_AUTH"
    r"|INSECURE|TEST_MODE|DEV_MODE|E2E_MODE|MOCK_ACCESS|FAKE_ACCESS)"
)

EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z][0-9A-Za-z.-]*)?$")
_DIGEST_PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
OPENCLAW_VERSION_ARG = "OPENCLAW_VERSION"
DEFAULT_MAX_INSTANCES = 1

ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation, StackProfile], None]
StackCheck = Callable[[StackValidationArgs, ReportViolation, StackProfile], None]


def _config(args: ResourceValidationArgs | StackValidationArgs) -> Mapping[str, Any]:
    return args.get_config() or {}


# --- data-bucket-protected ------------------------------------------------------------------


def data_bucket_protected(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """Kept stacks keep their data: the bucket and the snapshot key are protected, the bucket
    keeps the one name derived from project and stack, so no refactor replaces it, and no
    lifecycle rule deletes anything but the runtime's trash."""
    if stack.ephemeral:
        return
    if args.resource_type == r.R2_BUCKET_LIFECYCLE:
        _lifecycle_problems(args, report, _config(args))
        return
    kind = _kept_data_kind(args.resource_type, args.name)
    if kind is None:
        return
    where = f"{kind} '{args.name}' of stack '{stack.stack}'"
    if not args.opts.protect:
        report(
            f"{where} is not protected, so `pulumi destroy` or a refactor could delete it: "
            "pass `protect=True` to its component (only stacks with `ephemeral: true` may "
            "leave it unprotected).",
            None,
        )
    if args.opts.delete_before_replace:
        report(
            f"{where} sets `delete_before_replace`, so any replacement deletes the data before "
            "its successor exists: remove the option.",
            None,
        )
    if kind != "R2 bucket":
        return
    name = r.prop(args.props, "name")
    expected = expected_bucket_name(stack, _config(args))
    if name != expected:
        report(
            f"{where} is named {name!r}, not the stack's stable name {expected!r}: a bucket "
            "cannot be renamed, so a changed name replaces the bucket and its snapshots. Keep "
            f"the name {expected!r} (or set the policy's `bucketName` when the stack "
            "deliberately uses another one).",
            None,
        )


def _lifecycle_problems(
    args: ResourceValidationArgs, report: ReportViolation, config: Mapping[str, Any]
) -> None:
    deletable = tuple(_string_set(config.get("deletablePrefixes")) or {TRASH_PREFIX})
    bucket = r.prop(args.props, "bucketName", "bucket_name")
    for rule in r.items(r.prop(args.props, "rules")):
        deletes = r.prop(rule, "deleteObjectsTransition", "delete_objects_transition")
        if r.prop(rule, "enabled") is False or deletes is None:
            continue
        prefix = r.prop(r.mapping(r.prop(rule, "conditions")), "prefix") or ""
        if not (isinstance(prefix, str) and prefix.startswith(deletable)):
            report(
                f"Lifecycle rule {r.prop(rule, 'id')!r} of bucket {bucket!r} ('{args.name}') "
                f"deletes objects under prefix {prefix!r}: snapshot blobs are shared between "
                "generations, so their age says nothing about whether HEAD still needs them. "
                f"Limit deletion rules to {', '.join(sorted(deletable))}.",
                None,
            )


def _kept_data_kind(resource_type: str, name: str) -> str | None:
    if resource_type == r.R2_BUCKET:
        return "R2 bucket"
    # Every snapshot is encrypted with this key: without it the bucket holds noise.
    if resource_type == r.RANDOM_BYTES and name.endswith("snapshot-key"):
        return "snapshot key"
    return None


TRASH_PREFIX = "trash/"


def expected_bucket_name(stack: StackProfile, config: Mapping[str, Any]) -> str:
    template = config.get("bucketName") or "{project}-{stack}-data"
    return str(template).format(project=stack.project, stack=stack.stack)


# --- bucket-never-public ---------------------------------------------------------------------


def bucket_never_public(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """No bucket of the stack is reachable from the internet: no r2.dev URL, no custom domain."""
    bucket = r.prop(args.props, "bucketName", "bucket_name")
    if args.resource_type == r.R2_MANAGED_DOMAIN and r.prop(args.props, "enabled") is not False:
        report(
            f"R2 managed domain '{args.name}' turns on the public r2.dev URL of bucket "
            f"{bucket!r}, which serves every snapshot to anyone: remove the R2ManagedDomain "
            "resource (or set `enabled=False`); the Worker and the runtime reach the bucket "
            "through its binding and the scoped token.",
            None,
        )
    elif args.resource_type == r.R2_CUSTOM_DOMAIN:
        domain = r.prop(args.props, "domain")
        report(
            f"R2 custom domain '{args.name}' publishes bucket {bucket!r} on {domain!r} for "
            "anyone to read: remove the R2CustomDomain resource; the bucket is private to the "
            "stack.",
            None,
        )


# --- tokens-scoped ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bucket:
    account_id: str
    name: str


def tokens_scoped(args: StackValidationArgs, report: ReportViolation, _stack: StackProfile) -> None:
    """Each API token the stack creates reaches only this stack's bucket objects (R2 tokens) or
    only runs the AI Gateway (the gateway token); nothing account-wide, per zone or per user."""
    config = _config(args)
    r2_groups = _string_set(config.get("r2PermissionGroupIds")) or {
        R2_BUCKET_ITEM_READ,
        R2_BUCKET_ITEM_WRITE,
    }
    gateway_groups = _string_set(config.get("aiGatewayRunPermissionGroupIds"))
    buckets = {
        _Bucket(str(r.prop(res.props, "accountId", "account_id")), str(r.prop(res.props, "name")))
        for res in args.resources
        if res.resource_type == r.R2_BUCKET
    }
    accounts = {b.account_id for b in buckets}
    for token in args.resources:
        if token.resource_type not in r.TOKENS:
            continue
        for index, policy in enumerate(r.items(r.prop(token.props, "policies"))):
            problems = _token_policy_problems(policy, buckets, accounts, r2_groups, gateway_groups)
            for problem in problems:
                report(f"API token '{token.name}' policy #{index + 1} {problem}", token.urn)


def _string_set(value: Any) -> set[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {str(v) for v in value}
    return set()


def _token_policy_problems(
    policy: Mapping[str, Any],
    buckets: set[_Bucket],
    accounts: set[str],
    r2_groups: set[str],
    gateway_groups: set[str],
) -> list[str]:
    if r.prop(policy, "effect") == "deny":
        return []  # a deny policy only takes permissions away
    scope = r.json_object(r.prop(policy, "resources"))
    if not scope:
        return [
            "has no readable `resources` object: name the one bucket it may use, as "
            "infra/permissions.py does."
        ]
    groups = {
        str(r.prop(g, "id"))
        for g in r.items(r.prop(policy, "permissionGroups", "permission_groups"))
    }
    if not groups:
        return ["grants no permission group: remove the policy or name the group it needs."]
    own = ", ".join(sorted(repr(b.name) for b in buckets)) or "(none in this stack)"
    problems: list[str] = []
    for key, value in scope.items():
        if value != "*":
            problems.append(
                f"nests a wildcard scope under {key!r} (every zone or bucket of it): name the "
                "single bucket instead."
            )
        elif key.startswith(R2_BUCKET_SCOPE):
            problems += _bucket_grant_problems(key, groups, buckets, own, r2_groups)
        elif key.startswith(ZONE_SCOPE):
            problems.append(
                f"grants zone permissions ({key}): the stack's tokens never touch zones; "
                "remove this resource from the token."
            )
        elif key.startswith(ACCOUNT_SCOPE):
            problems += _account_grant_problems(key, groups, accounts, own, gateway_groups)
        elif key.startswith(USER_SCOPE):
            problems.append(
                f"grants user-wide permissions ({key}): scope the token to this stack's bucket."
            )
        else:
            problems.append(f"grants an unrecognised scope {key!r}: scope it to {own} only.")
    return problems


def _bucket_grant_problems(
    key: str, groups: set[str], buckets: set[_Bucket], own: str, r2_groups: set[str]
) -> list[str]:
    match = _R2_BUCKET_KEY.match(key[len(R2_BUCKET_SCOPE) :])
    problems: list[str] = []
    if match is None:
        problems.append(f"grants {key!r}, which names no single bucket: scope it to {own} only.")
    elif _Bucket(match.group(1), match.group(3)) not in buckets:
        problems.append(
            f"grants bucket {match.group(3)!r} of account {match.group(1)}, which is not this "
            f"stack's bucket ({own}): scope it to the stack's own bucket."
        )
    extra = sorted(groups - r2_groups)
    if extra:
        problems.append(
            f"gives permission groups {extra} on a bucket; only 'Workers R2 Storage Bucket Item "
            "Read/Write' belong on a bucket token: drop the others."
        )
    return problems


def _account_grant_problems(
    key: str, groups: set[str], accounts: set[str], own: str, gateway_groups: set[str]
) -> list[str]:
    account = key[len(ACCOUNT_SCOPE) :]
    if not _ACCOUNT_ID.match(account):
        return [f"grants {key!r}, a wildcard over accounts: scope it to {own} only."]
    problems: list[str] = []
    if accounts and account not in accounts:
        problems.append(
            f"grants account {account}, not the stack's account: use the stack's `accountId`."
        )
    if not gateway_groups:
        problems.append(
            f"grants account-wide permission groups {sorted(groups)}, and this pack cannot tell "
            "whether they are 'AI Gateway Run' because the policy `tokens-scoped` has no "
            "`aiGatewayRunPermissionGroupIds`: set it to that group's id (GET "
            "/accounts/<id>/tokens/permission_groups?name=AI%20Gateway%20Run) in the policy "
            "pack config, or scope the token to the stack's bucket."
        )
        return problems
    extra = sorted(groups - gateway_groups)
    if extra:
        problems.append(
            f"grants account-wide permission groups {extra}: an account-wide token may only "
            "run the AI Gateway ('AI Gateway Run'); scope R2 access to the stack's bucket and "
            "drop the rest."
        )
    return problems


# --- access-protects-admin -------------------------------------------------------------------


def access_protects_admin(
    args: StackValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """An Access application covers /_admin/*, /api/* and /debug/* of every hostname the Worker
    serves, and lets in only named people or groups (never "everyone")."""
    hostnames, problems = worker_hostnames(args.resources, stack)
    for problem in problems:
        report(problem, None)
    apps = [res for res in args.resources if res.resource_type in r.ACCESS_APPLICATIONS]
    for host in sorted(hostnames):
        for path in ADMIN_PATHS:
            if not any(_app_covers(app, host, path) for app in apps):
                report(
                    f"No Access application covers {host}{path}/*: add it to the "
                    "ZeroTrustAccessApplication's destinations (infra/access.py protects "
                    f"{', '.join(p + '/*' for p in ADMIN_PATHS)}).",
                    None,
                )
    for app in apps:
        for problem in _app_policy_problems(app):
            report(f"Access application '{app.name}' {problem}", app.urn)


def worker_hostnames(
    resources: Sequence[PolicyResource], stack: StackProfile
) -> tuple[set[str], list[str]]:
    """Hostnames the stack serves a Worker on (custom domains, routes, workers.dev), and the
    reasons some could not be told."""
    hosts: set[str] = set()
    problems: list[str] = []
    for res in resources:
        host: Any = None
        workers_dev_script: Any = None
        if res.resource_type == r.WORKERS_CUSTOM_DOMAIN:
            host = r.prop(res.props, "hostname")
        elif res.resource_type == r.WORKERS_ROUTE:
            pattern = r.prop(res.props, "pattern")
            host = pattern.split("/", 1)[0] if isinstance(pattern, str) else None
        elif res.resource_type == r.WORKER:
            if r.prop(r.mapping(r.prop(res.props, "subdomain")), "enabled") is True:
                workers_dev_script = r.prop(res.props, "name")
        elif res.resource_type == r.WORKERS_SCRIPT_SUBDOMAIN and r.prop(res.props, "enabled"):
            workers_dev_script = r.prop(res.props, "scriptName", "script_name")
        if isinstance(host, str) and host:
            hosts.add(host.lower())
        if workers_dev_script is None:
            continue
        if stack.workers_subdomain:
            hosts.add(f"{str(workers_dev_script).lower()}.{stack.workers_subdomain}.workers.dev")
        else:
            problems.append(
                f"Worker '{res.name}' is served on workers.dev but the stack has no "
                "`workersSubdomain` config, so this pack cannot check that Access covers that "
                "hostname: turn its workers.dev subdomain off (serve it on the custom domain "
                "only) or `pulumi config set workersSubdomain <name>`."
            )
    if not hosts and not problems:
        problems.append(
            "The stack serves no Worker hostname this pack can see (no custom domain, route or "
            "workers.dev subdomain), so nothing shows Access covering the admin paths: serve "
            "the Worker through the Worker component, which declares its hostname."
        )
    return hosts, problems


def _app_covers(app: PolicyResource, host: str, path: str) -> bool:
    app_type = r.prop(app.props, "type")
    if app_type not in (None, "self_hosted"):
        return False
    patterns: list[str] = []
    for dest in r.items(r.prop(app.props, "destinations")):
        if r.prop(dest, "type") in (None, "public"):
            uri = r.prop(dest, "uri")
            if isinstance(uri, str):
                patterns.append(uri)
    for key in ("selfHostedDomains", "self_hosted_domains"):
        patterns += [d for d in r.prop(app.props, key) or () if isinstance(d, str)]
    domain = r.prop(app.props, "domain")
    if isinstance(domain, str):
        patterns.append(domain)
    return any(_pattern_covers(p, host, path) for p in patterns)


def _pattern_covers(pattern: str, host: str, path: str) -> bool:
    """Does the Access destination `pattern` protect `<host><path>/*` (the path and below)?"""
    pattern = pattern.lower().removeprefix("https://").removeprefix("http://")
    pattern_host, slash, pattern_path = pattern.partition("/")
    if not _host_matches(pattern_host, host):
        return False
    pattern_path = slash + pattern_path
    if pattern_path in ("", "/", "/*"):
        return True
    if not pattern_path.endswith("/*"):
        return False
    prefix = pattern_path[: -len("/*")]
    return path == prefix or path.startswith(prefix + "/")


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def _app_policy_problems(app: PolicyResource) -> list[str]:
    attached = _attached_policies(app)
    if attached is None:
        return [
            "refers to Access policies this pack cannot find in the stack: attach the "
            "ZeroTrustAccessPolicy resources of this stack by their `id`."
        ]
    problems = []
    named_allow = False
    for label, decision, includes in attached:
        if decision not in _OPEN_DECISIONS:
            continue
        if any(r.prop(rule, "everyone") is not None for rule in includes):
            problems.append(
                f"lets everyone in through policy {label} (decision {decision!r} includes "
                "'everyone'): include named emails, email domains or groups instead."
            )
        elif decision == "allow" and includes:
            named_allow = True
    if not named_allow:
        problems.append(
            "has no allow policy for named people: attach one including the admins' emails "
            "or email domain (config adminEmails / adminEmailDomains)."
        )
    return problems


def _attached_policies(
    app: PolicyResource,
) -> list[tuple[str, Any, list[Mapping[str, Any]]]] | None:
    """(label, decision, includes) of every policy the app applies, or None when unknown."""
    attached: list[tuple[str, Any, list[Mapping[str, Any]]]] = []
    referenced = 0
    for entry in r.items(r.prop(app.props, "policies")):
        if r.prop(entry, "decision") is not None:  # an inline (legacy) policy
            label = repr(r.prop(entry, "name") or "inline")
            attached.append(
                (label, r.prop(entry, "decision"), list(r.items(r.prop(entry, "includes"))))
            )
        else:
            referenced += 1
    if referenced:
        # The engine records which resources feed `policies`; a state without property
        # dependencies falls back to the app's dependencies of the Access policy type.
        sources = app.property_dependencies.get("policies") or app.dependencies
        found = [res for res in sources if res.resource_type in r.ACCESS_POLICIES]
        if not found:
            return None
        for res in found:
            includes = list(r.items(r.prop(res.props, "includes")))
            attached.append((f"'{res.name}'", r.prop(res.props, "decision"), includes))
    return attached


# --- no-dev-switches -------------------------------------------------------------------------


def no_dev_switches(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """Deployed Workers carry no local backend, no test-mode auth bypass, and debug routes only
    on non-production stacks whose config asks for them."""
    if args.resource_type not in r.WORKER_SCRIPTS:
        return
    for binding in r.worker_bindings(args.props):
        name = str(r.prop(binding, "name") or "")
        upper = name.upper()
        if upper == LOCAL_BACKEND or upper.startswith("LOCAL_"):
            report(
                f"Worker '{args.name}' has binding {name!r}, a switch of the local `make dev` "
                "backend that bypasses the container and Access: remove it from the deployed "
                "Worker (infra/ never sets MOLT_LOCAL_BACKEND or LOCAL_*).",
                None,
            )
        elif _AUTH_BYPASS.search(upper):
            report(
                f"Worker '{args.name}' has binding {name!r}, a test-mode switch that weakens "
                "authentication: remove it; tests set it in their own local configuration.",
                None,
            )
        elif upper == DEBUG_ROUTES and _truthy(r.binding_text(binding)):
            if stack.production:
                report(
                    f"Worker '{args.name}' enables /debug/* on production stack "
                    f"'{stack.stack}': `pulumi config set debugRoutes false`.",
                    None,
                )
            elif not stack.debug_routes_marked:
                report(
                    f"Worker '{args.name}' enables /debug/* but stack '{stack.stack}' is not "
                    "marked for debug routes: set DEBUG_ROUTES from the stack's `debugRoutes` "
                    "config only.",
                    None,
                )


def _truthy(text: str | None) -> bool:
    return text is not None and text.strip().lower() in _TRUTHY


# --- secrets-in-secret-bindings --------------------------------------------------------------


def secrets_in_secret_bindings(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """Every secret the Worker receives is a `secret_text` binding, never plain text (plain-text
    bindings are shown to anyone who can read the Worker's settings)."""
    if args.resource_type not in r.WORKER_SCRIPTS:
        return
    for binding in r.worker_bindings(args.props):
        kind = r.prop(binding, "type")
        if kind not in ("plain_text", "json"):
            continue
        name = str(r.prop(binding, "name") or "")
        text = r.binding_text(binding) or ""
        reason = "its name says it holds a secret" if is_secret_name(name) else None
        reason = reason or secret_shape(text)
        if reason is not None:
            report(
                f"Worker '{args.name}' binding {name!r} is {kind}, but {reason}: declare it as "
                "a `secret_text` binding fed from a Pulumi secret (`pulumi config set --secret "
                "...`), and rotate the value if it was ever deployed in plain text.",
                None,
            )


# --- ai-gateway-authenticated ----------------------------------------------------------------


def ai_gateway_authenticated(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """The AI Gateway refuses requests without the stack's token (`cf-aig-authorization`)."""
    if args.resource_type != r.AI_GATEWAY:
        return
    if r.prop(args.props, "authentication") is not True:
        gateway = r.prop(args.props, "aiGatewayId", "ai_gateway_id")
        report(
            f"AI Gateway '{args.name}' ({gateway!r}) accepts unauthenticated requests, so anyone "
            "who learns its URL spends the provider keys: set `authentication=True` (the "
            "runtime sends the stack's run token in cf-aig-authorization).",
            None,
        )


# --- container-bounded -----------------------------------------------------------------------


def container_bounded(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """The container application cannot scale past the pack's bound (1 agent = 1 instance)."""
    if not r.is_container_app(args.resource_type, args.props):
        return
    bound = _max_instances_bound(_config(args))
    value = r.prop(args.props, "max_instances", "maxInstances")
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        report(
            f"Container application '{args.name}' has no whole-number max_instances ({value!r}): "
            f"set `maxInstances` in the stack config (at most {bound}).",
            None,
        )
    elif value > bound:
        report(
            f"Container application '{args.name}' may run {int(value)} instances, above this "
            f"pack's bound of {bound} (one personal agent needs one; each instance bills and "
            f"holds its own state): `pulumi config set maxInstances {bound}`, or raise the "
            "`maxInstances` of policy `container-bounded` in the policy pack config.",
            None,
        )


def _max_instances_bound(config: Mapping[str, Any]) -> int:
    bound = config.get("maxInstances", DEFAULT_MAX_INSTANCES)
    return bound if isinstance(bound, int) and bound >= 1 else DEFAULT_MAX_INSTANCES


# --- pinned-versions -------------------------------------------------------------------------


def pinned_versions(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """The container runs an image pinned by digest, built for an exact OpenClaw version."""
    if r.is_container_app(args.resource_type, args.props):
        image = r.prop(args.props, "image")
        if not isinstance(image, str) or not _DIGEST_PINNED.search(image):
            report(
                f"Container application '{args.name}' runs image {image!r}, which is not pinned "
                "by digest: use the pushed image's `ref` (…@sha256:<64 hex>) so every rollout "
                "runs exactly what was built.",
                None,
            )
    elif args.resource_type == r.DOCKER_IMAGE:
        build_args = r.mapping(r.prop(args.props, "buildArgs", "build_args"))
        if OPENCLAW_VERSION_ARG not in build_args:
            return
        version = build_args[OPENCLAW_VERSION_ARG]
        if not isinstance(version, str) or not EXACT_VERSION.match(version):
            report(
                f"Image '{args.name}' builds OpenClaw {version!r}, which is not an exact "
                "version (no 'latest', ranges or tags): `pulumi config set openclawVersion "
                "<x.y.z>` or pin container/openclaw.version.",
                None,
            )


# --- sleep-never-cost (advisory) -------------------------------------------------------------


def sleep_never_cost(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """A non-production container that never sleeps bills around the clock (advisory)."""
    if args.resource_type not in r.WORKER_SCRIPTS or stack.production:
        return
    for binding in r.worker_bindings(args.props):
        if r.prop(binding, "name") == SLEEP_AFTER:
            text = r.binding_text(binding)
            if text is not None and text.strip().lower() == "never":
                report(
                    f"Worker '{args.name}' keeps the container of non-production stack "
                    f"'{stack.stack}' awake forever (SLEEP_AFTER=never), billing every hour: "
                    "`pulumi config set sleepAfter 10m` unless it must stay up.",
                    None,
                )


# --- the table the pack is built from --------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: EnforcementLevel
    scope: Literal["resource", "stack"]
    check: ResourceCheck | StackCheck
    config: PolicyConfigSchema | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "data-bucket-protected",
        "Non-ephemeral stacks protect their R2 bucket and snapshot key and keep the bucket's "
        "per-stack name, so no destroy, rename or refactor can delete the agent's data.",
        EnforcementLevel.MANDATORY,
        "resource",
        data_bucket_protected,
        PolicyConfigSchema(
            {
                "bucketName": {
                    "type": "string",
                    "description": "Expected bucket name; {project} and {stack} are replaced.",
                    "default": "{project}-{stack}-data",
                },
                "deletablePrefixes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Object prefixes a lifecycle rule may delete.",
                    "default": [TRASH_PREFIX],
                },
            }
        ),
    ),
    Rule(
        "bucket-never-public",
        "The stack's R2 bucket is never public: no r2.dev managed domain, no custom domain.",
        EnforcementLevel.MANDATORY,
        "resource",
        bucket_never_public,
    ),
    Rule(
        "tokens-scoped",
        "API tokens the stack creates reach only its own bucket's objects, or only run the AI "
        "Gateway; never account-wide, zone or user permissions.",
        EnforcementLevel.MANDATORY,
        "stack",
        tokens_scoped,
        PolicyConfigSchema(
            {
                "r2PermissionGroupIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Permission groups allowed on the stack's bucket.",
                    "default": [R2_BUCKET_ITEM_READ, R2_BUCKET_ITEM_WRITE],
                },
                "aiGatewayRunPermissionGroupIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Id(s) of the 'AI Gateway Run' permission group, the only "
                    "account-wide grant allowed.",
                    "default": [],
                },
            }
        ),
    ),
    Rule(
        "access-protects-admin",
        "A Zero Trust Access application covers /_admin/*, /api/* and /debug/* of the Worker's "
        "hostname and admits only named people or groups, never everyone.",
        EnforcementLevel.MANDATORY,
        "stack",
        access_protects_admin,
    ),
    Rule(
        "no-dev-switches",
        "Deployed Workers carry no local-backend or auth-bypass switch, and debug routes only "
        "on non-production stacks configured for them.",
        EnforcementLevel.MANDATORY,
        "resource",
        no_dev_switches,
    ),
    Rule(
        "secrets-in-secret-bindings",
        "Every secret the Worker receives is a secret_text binding, never plain text.",
        EnforcementLevel.MANDATORY,
        "resource",
        secrets_in_secret_bindings,
    ),
    Rule(
        "ai-gateway-authenticated",
        "The AI Gateway requires authentication.",
        EnforcementLevel.MANDATORY,
        "resource",
        ai_gateway_authenticated,
    ),
    Rule(
        "container-bounded",
        "The container application's max_instances stays within the pack's bound (1 unless "
        "configured).",
        EnforcementLevel.MANDATORY,
        "resource",
        container_bounded,
        PolicyConfigSchema(
            {
                "maxInstances": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Largest max_instances allowed for the container.",
                    "default": DEFAULT_MAX_INSTANCES,
                }
            }
        ),
    ),
    Rule(
        "pinned-versions",
        "The container image is pinned by digest and built for an exact OpenClaw version.",
        EnforcementLevel.MANDATORY,
        "resource",
        pinned_versions,
    ),
    Rule(
        "sleep-never-cost",
        "Non-production stacks let the container sleep when idle (cost warning).",
        EnforcementLevel.ADVISORY,
        "resource",
        sleep_never_cost,
    ),
)
