"""access-protects-admin: Zero Trust Access stands in front of every admin path of the Worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs

from policies import resources as r
from policies.stack_profile import StackProfile

ADMIN_PATHS = ("/_admin", "/api", "/debug")
# Decisions that admit a matching request after checking it ("bypass" admits without checking).
_ADMITTING = frozenset({"allow", "non_identity"})
# Access rule selectors that name people: an email, a domain, a list or an IdP group.
_IDENTITY_SELECTORS = frozenset(
    {
        "email",
        "emailDomain",
        "emailList",
        "group",
        "githubOrganization",
        "gsuite",
        "azureAd",
        "okta",
        "saml",
        "oidc",
    }
)


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
        elif r.is_worker_deploy(res.resource_type, res.props):
            host = r.prop(res.props, "custom_domain")
            if r.prop(res.props, "workers_dev") is True:
                workers_dev_script = r.prop(res.props, "script_name")
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
    for policy in attached:
        includes = _selectors(policy.includes)
        limited = _identity_limited(policy)
        if policy.decision == "bypass":
            problems.append(
                f"has bypass policy {policy.label}, which skips authentication on the admin "
                "paths: remove it (CI uses a service token with a non_identity policy)."
            )
        elif policy.decision in _ADMITTING and "everyone" in includes and not limited:
            problems.append(
                f"lets everyone in through policy {policy.label} (decision {policy.decision!r} "
                "includes 'everyone' and requires no identity): include named emails, email "
                "domains or groups instead."
            )
        if policy.decision == "allow" and limited:
            named_allow = True
    if not named_allow:
        problems.append(
            "has no allow policy for named people: attach one including only the admins' "
            "emails, email domains or identity-provider groups (config adminEmails / "
            "adminEmailDomains)."
        )
    return problems


@dataclass(frozen=True)
class _Policy:
    label: str
    decision: Any
    includes: list[Mapping[str, Any]]
    requires: list[Mapping[str, Any]]


def _policy(label: str, props: Mapping[str, Any]) -> _Policy:
    return _Policy(
        label,
        r.prop(props, "decision"),
        list(r.items(r.prop(props, "includes"))),
        list(r.items(r.prop(props, "requires"))),
    )


def _selectors(rules: list[Mapping[str, Any]]) -> set[str]:
    """The selector kinds used by Access rules ({"email": {...}} -> "email")."""
    return {_camel(key) for rule in rules for key, value in rule.items() if value is not None}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _identity_limited(policy: _Policy) -> bool:
    """Does the policy admit only identities it names (every include, or some require)?"""
    includes = _selectors(policy.includes)
    if includes and includes <= _IDENTITY_SELECTORS:
        return True
    return bool(_selectors(policy.requires) & _IDENTITY_SELECTORS)


def _attached_policies(app: PolicyResource) -> list[_Policy] | None:
    """Every policy the app applies, or None when its referenced policies cannot be found."""
    attached: list[_Policy] = []
    referenced = 0
    for entry in r.items(r.prop(app.props, "policies")):
        if r.prop(entry, "decision") is not None:  # an inline (legacy) policy
            attached.append(_policy(repr(r.prop(entry, "name") or "inline"), entry))
        else:
            referenced += 1
    if referenced:
        # The engine records which resources feed `policies`; a state without property
        # dependencies falls back to the app's dependencies of the Access policy type.
        sources = app.property_dependencies.get("policies") or app.dependencies
        found = [res for res in sources if res.resource_type in r.ACCESS_POLICIES]
        if not found:
            return None
        attached += [_policy(f"'{res.name}'", res.props) for res in found]
    return attached
