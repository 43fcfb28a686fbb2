"""The entrypoint Worker: script, version (bindings, container class, assets), deployment,
cron trigger and hostname.

`Worker` + `WorkerVersion` + `WorkersDeployment` is used rather than `WorkersScript` because only
the version resource carries `containers` and the declarative `exports` the Sandbox Durable
Object class needs (docs/architecture.md has the full reasoning).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_cloudflare as cloudflare

from infra.build import WorkerBundle

DEFAULT_COMPATIBILITY_DATE = "2026-09-01"
SANDBOX_CLASS = "Sandbox"
_BINDING = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Names docs/interfaces.md reserves for a local run; a deployed Worker must never carry them.
LOCAL_ONLY = {
    "MOLT_LOCAL_BACKEND",
    "LOCAL_GATEWAY_URL",
    "LOCAL_CONTROL_URL",
    "LOCAL_CDP_URL",
    "LOCAL_ADMIN_TOKEN",
}


@dataclass
class WorkerArgs:
    account_id: str
    script_name: str
    bundle: WorkerBundle
    assets_dir: Path
    bucket_name: pulumi.Input[str]
    hostname: str
    secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    vars: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    custom_domain: str = ""
    zone_id: str = ""
    cron: str = "*/5 * * * *"
    compatibility_date: str = DEFAULT_COMPATIBILITY_DATE
    compatibility_flags: list[str] = field(default_factory=lambda: ["nodejs_compat"])


def wrangler_compatibility(worker_dir: Path) -> tuple[str, list[str]]:
    """compatibility_date/flags from wrangler.jsonc, so `wrangler dev` and deploys agree."""
    path = worker_dir / "wrangler.jsonc"
    text = path.read_text() if path.exists() else ""
    date = re.search(r'"compatibility_date"\s*:\s*"([0-9-]+)"', text)
    if not date:
        return DEFAULT_COMPATIBILITY_DATE, ["nodejs_compat"]
    flags = re.search(r'"compatibility_flags"\s*:\s*(\[[^\]]*\])', text)
    if not flags:
        return date.group(1), []
    try:
        parsed = json.loads(flags.group(1))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: compatibility_flags is not a JSON list of strings") from err
    return date.group(1), [str(f) for f in parsed]


def bundle_ok(bundle: WorkerBundle) -> bool:
    return bool(bundle.modules) and bundle.modules[0].name == bundle.main_module


class Worker(pulumi.ComponentResource):
    url: pulumi.Output[str]
    script_name: pulumi.Output[str]
    version_id: pulumi.Output[str]
    deployment: cloudflare.WorkersDeployment

    def __init__(
        self, name: str, args: WorkerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:worker:Worker", name, None, opts)
        names = [*args.secrets, *args.vars]
        bad = [n for n in names if not _BINDING.match(n)]
        if bad:
            raise ValueError(f"WorkerArgs: binding names must be UPPER_SNAKE: {bad}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"WorkerArgs: {dupes} given both as secret and var")
        local = sorted(LOCAL_ONLY & set(names))
        if local:
            raise ValueError(f"WorkerArgs: {local} are local-run switches and are never deployed")
        if not args.assets_dir.is_dir():
            raise ValueError(f"WorkerArgs.assets_dir {args.assets_dir} is not a directory")
        if not bundle_ok(args.bundle):
            raise ValueError("WorkerArgs.bundle: the main module must be the first module")
        if args.custom_domain and not args.zone_id:
            raise ValueError("WorkerArgs: custom_domain needs zone_id")
        child = pulumi.ResourceOptions(parent=self)

        script = cloudflare.Worker(
            f"{name}-script",
            account_id=args.account_id,
            name=args.script_name,
            subdomain=cloudflare.WorkerSubdomainArgs(
                enabled=not args.custom_domain, previews_enabled=False
            ),
            observability=cloudflare.WorkerObservabilityArgs(enabled=True),
            opts=child,
        )
        bindings = [
            cloudflare.WorkerVersionBindingArgs(
                name="SANDBOX", type="durable_object_namespace", class_name=SANDBOX_CLASS
            ),
            cloudflare.WorkerVersionBindingArgs(
                name="DATA", type="r2_bucket", bucket_name=args.bucket_name
            ),
            cloudflare.WorkerVersionBindingArgs(name="BROWSER", type="browser"),
            cloudflare.WorkerVersionBindingArgs(name="ASSETS", type="assets"),
        ]
        bindings += [
            cloudflare.WorkerVersionBindingArgs(name=k, type="plain_text", text=v)
            for k, v in sorted(args.vars.items())
        ]
        bindings += [
            cloudflare.WorkerVersionBindingArgs(
                name=k, type="secret_text", text=pulumi.Output.secret(v)
            )
            for k, v in sorted(args.secrets.items())
        ]
        bundle = args.bundle
        version = cloudflare.WorkerVersion(
            f"{name}-version",
            account_id=args.account_id,
            worker_id=script.id,
            main_module=bundle.main_module,
            modules=[
                cloudflare.WorkerVersionModuleArgs(
                    name=m.name,
                    content_type=m.content_type,
                    content_file=bundle.relative(bundle.directory / m.name),
                    content_sha256=m.sha256,
                )
                for m in bundle.modules
            ],
            compatibility_date=args.compatibility_date,
            compatibility_flags=args.compatibility_flags,
            bindings=bindings,
            assets=cloudflare.WorkerVersionAssetsArgs(
                directory=bundle.relative(args.assets_dir),
                # The Worker checks the Access JWT before any admin file is served.
                config=cloudflare.WorkerVersionAssetsConfigArgs(
                    run_worker_first=True, not_found_handling="none"
                ),
            ),
            containers=[cloudflare.WorkerVersionContainerArgs(class_name=SANDBOX_CLASS)],
            # Declarative: the namespace exists, SQLite-backed (containers need it), with no
            # migration tags to keep in step between versions.
            exports={
                SANDBOX_CLASS: cloudflare.WorkerVersionExportsArgs(
                    type="durable-object", storage="sqlite"
                )
            },
            annotations=cloudflare.WorkerVersionAnnotationsArgs(
                workers_message=f"pulumi: bundle {bundle.sha256[:12]}"
            ),
            opts=child,
        )
        self.deployment = cloudflare.WorkersDeployment(
            f"{name}-deployment",
            account_id=args.account_id,
            script_name=script.name,
            strategy="percentage",
            versions=[
                cloudflare.WorkersDeploymentVersionArgs(version_id=version.id, percentage=100)
            ],
            opts=child,
        )
        after_deploy = pulumi.ResourceOptions(parent=self, depends_on=[self.deployment])
        cloudflare.WorkersCronTrigger(
            f"{name}-cron",
            account_id=args.account_id,
            script_name=script.name,
            schedules=[cloudflare.WorkersCronTriggerScheduleArgs(cron=args.cron)],
            opts=after_deploy,
        )
        if args.custom_domain:
            cloudflare.WorkersCustomDomain(
                f"{name}-domain",
                account_id=args.account_id,
                hostname=args.custom_domain,
                service=script.name,
                zone_id=args.zone_id,
                opts=after_deploy,
            )
        self.script_name = script.name
        self.version_id = version.id
        self.url = pulumi.Output.from_input(f"https://{args.hostname}")
        self.register_outputs(
            {"url": self.url, "script_name": self.script_name, "version_id": self.version_id}
        )
