"""ai-gateway-authenticated, container-bounded, pinned-versions: what runs and who may call it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

import contract
from policies import resources as r
from policies.rules.common import config_of
from policies.stack_profile import StackProfile

EXACT_VERSION = contract.EXACT_VERSION
_DIGEST_PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
OPENCLAW_VERSION_ARG = "OPENCLAW_VERSION"
DEFAULT_MAX_INSTANCES = 1
# The pack config may raise its bound up to the program's own (the program refuses more).
MAX_INSTANCES_BOUND = contract.MAX_INSTANCES.hi


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


def container_bounded(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """The container application cannot scale past the pack's bound (1 agent = 1 instance)."""
    if not r.is_container_app(args.resource_type, args.props):
        return
    bound = _max_instances_bound(config_of(args))
    value = r.prop(args.props, "max_instances", "maxInstances")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or int(value) != value
        or value < contract.MAX_INSTANCES.lo
    ):
        report(
            f"Container application '{args.name}' has no whole-number max_instances of at least "
            f"{contract.MAX_INSTANCES.lo} ({value!r}): set `maxInstances` in the stack config "
            f"({contract.MAX_INSTANCES.lo}..{bound}).",
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
    # Policy config arrives as JSON through protobuf, so a configured 5 reads as 5.0.
    bound = config.get("maxInstances", DEFAULT_MAX_INSTANCES)
    if isinstance(bound, bool) or not isinstance(bound, int | float) or bound != int(bound):
        return DEFAULT_MAX_INSTANCES
    return min(max(int(bound), DEFAULT_MAX_INSTANCES), MAX_INSTANCES_BOUND)


def pinned_versions(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """The container runs an image pinned by digest, built for an exact OpenClaw version."""
    if r.is_worker_deploy(args.resource_type, args.props):
        _pinned_build(args, report, r.mapping(r.prop(args.props, "image_vars")))
        # wrangler builds a Dockerfile and binds the application to the pushed digest; any
        # other image source must name its digest itself.
        source = r.prop(args.props, "dockerfile")
        built = isinstance(source, str) and source.endswith("Dockerfile")
        if not built and not (isinstance(source, str) and _DIGEST_PINNED.search(source)):
            report(
                f"Container application of '{args.name}' runs image {source!r}, which is not "
                "pinned by digest: build it from the project's Dockerfile (`containerDir`) or "
                "name an image by digest (…@sha256:<64 hex>) so every rollout runs exactly "
                "what was built.",
                None,
            )
    elif r.is_container_app(args.resource_type, args.props):
        image = r.prop(args.props, "image")
        if not isinstance(image, str) or not _DIGEST_PINNED.search(image):
            report(
                f"Container application '{args.name}' runs image {image!r}, which is not pinned "
                "by digest: use the pushed image's `ref` (…@sha256:<64 hex>) so every rollout "
                "runs exactly what was built.",
                None,
            )
    elif args.resource_type == r.DOCKER_IMAGE:
        _pinned_build(args, report, r.mapping(r.prop(args.props, "buildArgs", "build_args")))


def _pinned_build(
    args: ResourceValidationArgs, report: ReportViolation, build_args: Mapping[str, Any]
) -> None:
    if OPENCLAW_VERSION_ARG not in build_args:
        return
    version = build_args[OPENCLAW_VERSION_ARG]
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        report(
            f"Image '{args.name}' builds OpenClaw {version!r}, which is not an exact "
            "version (semver: no 'latest', ranges, tags, build metadata or four-part numbers): "
            "`pulumi config set openclawVersion <x.y.z[-pre]>` or pin container/openclaw.version.",
            None,
        )
