"""The sandbox container: what image to build, how big an instance, how many.

It is deployed with the Worker in one `wrangler deploy` (infra/worker.py), because Cloudflare
binds the container application to the Worker's Durable Object namespace, which exists only once
that upload is done. This module validates the settings and fingerprints the build context;
wrangler builds the image with the machine's docker-compatible CLI and pushes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import contract
from contract import INSTANCE_TYPES, MAX_INSTANCES
from infra import build

SANDBOX_CLASS = "Sandbox"
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_BUILD_ARG = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass
class SandboxArgs:
    app_name: str
    context_dir: Path
    openclaw_version: str
    class_name: str = SANDBOX_CLASS
    instance_type: str = "standard-1"
    max_instances: int = 1
    # Further build arguments (e.g. BASE_IMAGE for a machine without Docker Hub); never secrets:
    # build arguments stay readable in the image history.
    build_args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxContainer:
    """The `containers` entry of the deploy, validated, with the fingerprint of its build."""

    app_name: str
    class_name: str
    dockerfile: str  # relative to the project, so state does not depend on the machine
    build_context: str
    image_vars: dict[str, str]
    image_fingerprint: str
    instance_type: str
    max_instances: int
    # One instance: one step. wrangler's own default for max_instances < 2 is the same.
    rollout_step_percentage: int = 100


def sandbox_container(args: SandboxArgs) -> SandboxContainer:
    if args.instance_type not in INSTANCE_TYPES:
        raise ValueError(
            f"SandboxArgs.instance_type {args.instance_type!r}: use one of {INSTANCE_TYPES}"
        )
    if not MAX_INSTANCES.lo <= args.max_instances <= MAX_INSTANCES.hi:
        raise ValueError(f"SandboxArgs.max_instances {args.max_instances}: must be {MAX_INSTANCES}")
    if not _APP_NAME.match(args.app_name):
        raise ValueError(f"SandboxArgs.app_name {args.app_name!r}: a-z, 0-9, '-' (max 63)")
    if not contract.is_exact_version(args.openclaw_version):
        raise ValueError(
            f"SandboxArgs.openclaw_version {args.openclaw_version!r}: an exact version"
        )
    bad = sorted(k for k in args.build_args if not _BUILD_ARG.match(k) or k == "OPENCLAW_VERSION")
    if bad:
        raise ValueError(
            f"SandboxArgs.build_args {bad}: UPPER_SNAKE names, and OPENCLAW_VERSION comes from "
            "openclaw_version"
        )
    # The same build arguments and platform devstack.images builds the local image with.
    image_vars = {
        **build.image_build_args(args.openclaw_version),
        **dict(sorted(args.build_args.items())),
    }
    fingerprint = build.image_fingerprint(
        args.context_dir,
        "|".join(f"{k}={v}" for k, v in image_vars.items()),
        build.IMAGE_PLATFORM,
    )
    return SandboxContainer(
        app_name=args.app_name,
        class_name=args.class_name,
        dockerfile=build.project_relative(args.context_dir / "Dockerfile"),
        build_context=build.project_relative(args.context_dir),
        image_vars=image_vars,
        image_fingerprint=fingerprint,
        instance_type=args.instance_type,
        max_instances=args.max_instances,
    )
