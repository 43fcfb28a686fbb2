"""The entrypoint Worker with its `Sandbox` Durable Object class and container application, cron
trigger and hostname: one `WorkerDeploy` resource, deployed by the pinned `wrangler deploy`.

Why wrangler and not the versions API (`WorkerVersion` + `WorkersDeployment`): Cloudflare refuses
a version upload that carries migrations (10211) or binds a class declared only in `exports`
(100406), and wrangler itself uploads such a Worker with `PUT /workers/scripts/{name}`
(docs/architecture.md has the evidence).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from infra import build
from infra.build import WorkerBundle
from infra.dynamic.worker_deploy import WorkerDeploy
from infra.sandbox import SandboxContainer

DEFAULT_COMPATIBILITY_DATE = "2026-09-01"
_BINDING = re.compile(r"^[A-Z][A-Z0-9_]*$")
_CRON = re.compile(r"^\S+( \S+){4}$")
# Names docs/interfaces.md reserves for a local run; a deployed Worker must never carry them.
LOCAL_ONLY = {
    "MOLT_LOCAL_BACKEND",
    "LOCAL_GATEWAY_URL",
    "LOCAL_CONTROL_URL",
    "LOCAL_CDP_URL",
    "LOCAL_ADMIN_TOKEN",
}


def read_jsonc(path: Path) -> dict[str, Any]:
    """A JSON-with-comments file (wrangler.jsonc): `//` and `/* */` comments, trailing commas."""
    text = path.read_text()
    out: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1 : i + 2])
                i += 2
                continue
            in_string = c != '"'
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    cleaned = re.sub(r",(\s*[}\]])", r"\1", "".join(out))
    try:
        data = json.loads(cleaned)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSONC ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _wrangler_config(worker_dir: Path) -> dict[str, Any]:
    path = worker_dir / "wrangler.jsonc"
    return read_jsonc(path) if path.exists() else {}


def wrangler_compatibility(worker_dir: Path) -> tuple[str, list[str]]:
    """compatibility_date/flags from wrangler.jsonc, so `wrangler dev` and deploys agree."""
    config = _wrangler_config(worker_dir)
    date = config.get("compatibility_date")
    if not isinstance(date, str):
        return DEFAULT_COMPATIBILITY_DATE, ["nodejs_compat"]
    flags = config.get("compatibility_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ValueError(
            f"{worker_dir / 'wrangler.jsonc'}: compatibility_flags is not a JSON list of strings"
        )
    return date, list(flags)


def wrangler_migrations(worker_dir: Path, sandbox_class: str) -> list[dict[str, Any]]:
    """The Durable Object migrations of wrangler.jsonc (wrangler sends those the script lacks)."""
    path = worker_dir / "wrangler.jsonc"
    migrations = _wrangler_config(worker_dir).get("migrations")
    if not isinstance(migrations, list) or not all(isinstance(m, dict) for m in migrations):
        raise ValueError(
            f"{path}: no `migrations` list; add "
            f'[{{"tag": "v1", "new_sqlite_classes": ["{sandbox_class}"]}}]'
        )
    sqlite = [c for m in migrations for c in m.get("new_sqlite_classes") or []]
    if sandbox_class not in sqlite:
        raise ValueError(
            f"{path}: no migration creates {sandbox_class} as a SQLite class "
            f"(`new_sqlite_classes`); containers need a SQLite-backed Durable Object"
        )
    return [dict(m) for m in migrations]


def wrangler_pin(worker_dir: Path) -> str:
    """The exact wrangler version worker/package.json pins (the one deploys run)."""
    path = worker_dir / "package.json"
    try:
        pin = json.loads(path.read_text())["devDependencies"]["wrangler"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: no devDependencies.wrangler pin") from err
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(pin)):
        raise ValueError(f"{path}: wrangler {pin!r} is not an exact version")
    return str(pin)


def bundle_ok(bundle: WorkerBundle) -> bool:
    return bool(bundle.modules) and bundle.modules[0].name == bundle.main_module


@dataclass
class WorkerArgs:
    account_id: str
    script_name: str
    bundle: WorkerBundle
    worker_dir: Path
    assets_dir: Path
    bucket_name: pulumi.Input[str]
    hostname: str
    container: SandboxContainer
    api_token: pulumi.Input[str]
    secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    vars: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    custom_domain: str = ""
    zone_id: str = ""
    cron: str = "*/5 * * * *"
    # Take over a live Worker of this name the stack did not create (ops/adopt.py).
    adopt: bool = False


class Worker(pulumi.ComponentResource):
    url: pulumi.Output[str]
    script_name: pulumi.Output[str]
    version_id: pulumi.Output[str]
    image: pulumi.Output[str]
    application_id: pulumi.Output[str]
    deploy: WorkerDeploy

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
        if not _CRON.match(args.cron):
            raise ValueError(f"WorkerArgs.cron {args.cron!r}: five fields, e.g. */5 * * * *")
        compatibility_date, compatibility_flags = wrangler_compatibility(args.worker_dir)
        c = args.container
        bundle = args.bundle
        wrangler = args.worker_dir / "node_modules" / "wrangler" / "bin" / "wrangler.js"
        props: dict[str, Any] = {
            "account_id": args.account_id,
            "script_name": args.script_name,
            "wrangler": build.project_relative(wrangler),
            "wrangler_version": wrangler_pin(args.worker_dir),
            "bundle_dir": bundle.relative(bundle.directory),
            "main_module": bundle.main_module,
            # One entry per module: a preview names the file whose bytes changed.
            "modules": {m.name: m.sha256 for m in bundle.modules},
            "compatibility_date": compatibility_date,
            "compatibility_flags": compatibility_flags,
            "migrations": wrangler_migrations(args.worker_dir, c.class_name),
            # By name, the order a refresh reads them back in.
            "bindings": [
                {"name": "ASSETS", "type": "assets"},
                {"name": "BROWSER", "type": "browser"},
                {"name": "DATA", "type": "r2_bucket", "bucket_name": args.bucket_name},
                {"name": "SANDBOX", "type": "durable_object_namespace", "class_name": c.class_name},
            ],
            "vars": dict(sorted(args.vars.items())),
            "secret_names": sorted(args.secrets),
            "assets": {
                "directory": build.project_relative(args.assets_dir),
                "hash": build.tree_hash(args.assets_dir),
                # The Worker checks the Access JWT before any admin file is served.
                "run_worker_first": True,
            },
            "app_name": c.app_name,
            "class_name": c.class_name,
            "dockerfile": c.dockerfile,
            "build_context": c.build_context,
            "image_vars": c.image_vars,
            "image_fingerprint": c.image_fingerprint,
            "instance_type": c.instance_type,
            "max_instances": c.max_instances,
            "rollout_step_percentage": c.rollout_step_percentage,
            "cron": [args.cron],
            "workers_dev": not args.custom_domain,
            "custom_domain": args.custom_domain,
            "zone_id": args.zone_id,
            "hostname": args.hostname,
            "adopt": args.adopt,
            "stack": pulumi.get_stack(),  # named in the provider's messages
        }
        self.deploy = WorkerDeploy(
            f"{name}-deploy",
            props,
            secrets=dict(sorted(args.secrets.items())),
            api_token=args.api_token,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.script_name = pulumi.Output.from_input(args.script_name)
        self.version_id = self.deploy.version_id
        self.image = self.deploy.image
        self.application_id = self.deploy.application_id
        self.url = pulumi.Output.from_input(f"https://{args.hostname}")
        self.register_outputs(
            {
                "url": self.url,
                "script_name": self.script_name,
                "version_id": self.version_id,
                "image": self.image,
                "application_id": self.application_id,
            }
        )
