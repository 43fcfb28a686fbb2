"""The sandbox image (built, pushed to Cloudflare's registry) and its Containers application."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from infra import build
from infra.dynamic.container_app import INSTANCE_TYPES, ContainerApp
from infra.dynamic.registry_credentials import REGISTRY_HOST, RegistryCredentials

PLATFORM = docker_build.Platform(build.IMAGE_PLATFORM)
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+([-.][0-9A-Za-z.]+)?$")


@dataclass
class SandboxArgs:
    account_id: str
    app_name: str
    context_dir: Path
    openclaw_version: str
    script_name: pulumi.Input[str]
    api_token: pulumi.Input[str]
    class_name: str = "Sandbox"
    instance_type: str = "standard-1"
    max_instances: int = 1
    # The Worker deployment that creates the Durable Object namespace this app binds to.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class Sandbox(pulumi.ComponentResource):
    image_ref: pulumi.Output[str]
    application_id: pulumi.Output[str]
    fingerprint: str

    def __init__(
        self, name: str, args: SandboxArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:sandbox:Sandbox", name, None, opts)
        if args.instance_type not in INSTANCE_TYPES:
            raise ValueError(
                f"SandboxArgs.instance_type {args.instance_type!r}: use one of {INSTANCE_TYPES}"
            )
        if not 1 <= args.max_instances <= 10:
            raise ValueError(f"SandboxArgs.max_instances {args.max_instances}: must be 1..10")
        if not _APP_NAME.match(args.app_name):
            raise ValueError(f"SandboxArgs.app_name {args.app_name!r}: a-z, 0-9, '-' (max 63)")
        if not _VERSION.match(args.openclaw_version):
            raise ValueError(
                f"SandboxArgs.openclaw_version {args.openclaw_version!r}: an exact version"
            )
        child = pulumi.ResourceOptions(parent=self)

        self.fingerprint = build.image_fingerprint(
            args.context_dir, args.openclaw_version, PLATFORM.value
        )
        repository = f"{REGISTRY_HOST}/{args.account_id}/{args.app_name}"
        tag = f"{repository}:{args.openclaw_version}-{self.fingerprint[:12]}"
        credentials = RegistryCredentials(
            f"{name}-registry-credentials",
            account_id=args.account_id,
            fingerprint=self.fingerprint,
            api_token=args.api_token,
            opts=child,
        )
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(
                location=_relative(args.context_dir),
            ),
            platforms=[PLATFORM],
            build_args=build.image_build_args(args.openclaw_version),
            tags=[tag],
            push=True,
            registries=[
                docker_build.RegistryArgs(
                    address=REGISTRY_HOST,
                    username=credentials.username,
                    password=pulumi.Output.secret(credentials.password),
                )
            ],
            opts=child,
        )
        # `ref` is the pushed tag with its digest: the application runs exactly what was built.
        self.image_ref = image.ref
        app = ContainerApp(
            f"{name}-app",
            account_id=args.account_id,
            app_name=args.app_name,
            script_name=args.script_name,
            class_name=args.class_name,
            image=image.ref,
            instance_type=args.instance_type,
            max_instances=args.max_instances,
            api_token=args.api_token,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.application_id = app.application_id
        self.register_outputs({"image_ref": self.image_ref, "application_id": self.application_id})


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(build.ROOT).as_posix()
    except ValueError:
        return str(path)
