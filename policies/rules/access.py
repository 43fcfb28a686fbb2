"""access-protects-admin: Zero Trust Access stands in front of every admin path of the Worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs

from policies import resources as r
from policies.stack_profile import StackProfile

ADMIN_PATHS = ("/_admin", "/api", "/debug")
# Decisions that let a matching request through; "deny" is the only one that does not.
_OPEN_DECISIONS = frozenset({"allow", "bypass", "non_identity"})


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
