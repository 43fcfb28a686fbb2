"""The deployed Worker's bindings: no-dev-switches, secrets-in-secret-bindings, sleep-never-cost."""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, ResourceValidationArgs

from policies import resources as r
from policies.secret_shapes import is_secret_name, secret_shape
from policies.stack_profile import StackProfile

LOCAL_BACKEND = "MOLT_LOCAL_BACKEND"
DEBUG_ROUTES = "DEBUG_ROUTES"
SLEEP_AFTER = "SLEEP_AFTER"
_TRUTHY = frozenset({"true", "1", "yes", "on"})
# Names of switches that turn the Worker's authentication off for tests.
_AUTH_BYPASS = re.compile(
    r"(AUTH_BYPASS|BYPASS_AUTH|BYPASS_ACCESS|ACCESS_BYPASS|SKIP_AUTH|DISABLE_AUTH|NO_AUTH"
    r"|INSECURE|TEST_MODE|DEV_MODE|E2E_MODE|MOCK_ACCESS|FAKE_ACCESS)"
)


def no_dev_switches(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """Deployed Workers carry no local backend, no test-mode auth bypass, and debug routes only
    on non-production stacks whose config asks for them."""
    if not r.is_worker(args.resource_type, args.props):
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


def secrets_in_secret_bindings(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """Every secret the Worker receives is a `secret_text` binding, never plain text (plain-text
    bindings are shown to anyone who can read the Worker's settings), and no secret is baked
    into the sandbox image as a build argument (those stay readable in the image history)."""
    if args.resource_type == r.DOCKER_IMAGE or r.is_worker_deploy(args.resource_type, args.props):
        build_args = r.mapping(r.prop(args.props, "buildArgs", "build_args", "image_vars"))
        for name, value in build_args.items():
            reason = _secret_reason(name, value if isinstance(value, str) else "")
            if reason is not None:
                report(
                    f"Image '{args.name}' build argument {name!r} looks like a secret ({reason}), "
                    "and build arguments stay readable in the image history: pass it to the "
                    "container at start as a Worker secret instead, and rotate it.",
                    None,
                )
    if not r.is_worker(args.resource_type, args.props):
        return
    for binding in r.worker_bindings(args.props):
        kind = r.prop(binding, "type")
        if kind not in ("plain_text", "json"):
            continue
        name = str(r.prop(binding, "name") or "")
        reason = _secret_reason(name, r.binding_text(binding) or "")
        if reason is not None:
            report(
                f"Worker '{args.name}' binding {name!r} is {kind}, but {reason}: declare it as "
                "a `secret_text` binding fed from a Pulumi secret (`pulumi config set --secret "
                "...`), and rotate the value if it was ever deployed in plain text.",
                None,
            )


def _secret_reason(name: str, value: str) -> str | None:
    if is_secret_name(name):
        return "its name says it holds a secret"
    return secret_shape(value)


def sleep_never_cost(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """A non-production container that never sleeps bills around the clock (advisory)."""
    if not r.is_worker(args.resource_type, args.props) or stack.production:
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
