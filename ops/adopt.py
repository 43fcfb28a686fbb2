"""`adopt`: upgrade a stack made by the old deploy path without deleting its live Worker.

The old path kept the Worker in `WorkerVersion` / `WorkersDeployment` / `worker-script` and the
container in `sandbox-*` resources; the program now deploys the same script and application
(same names) through one `WorkerDeploy`. A plain `pulumi up` would create that resource and then
delete the removed old ones, and deleting the old script resource deletes the live script the
new deploy has just uploaded. So the new resource's create refuses a live Worker it did not make
(infra/dynamic/worker_deploy.py), which ends that `up` before the engine's deletes, and this
command does the one-time state surgery (docs/architecture.md, "Upgrading a stack from the old
deploy path"):

1. `pulumi stack export` and pick the old path's resources by type;
2. `pulumi state delete` each of them, dependents and children first (the state only: nothing
   in the account is touched);
3. `pulumi config set moltworker:adoptWorker true`, so the next `pulumi up` deploys over the
   live Worker and application instead of refusing them.

Nothing changes without --yes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .context import Commands, Deps
from .errors import Console, OpsError
from .pulumi_cli import Pulumi, check_stack_name

ADOPT_KEY = "moltworker:adoptWorker"

# Resource types of the deploy path before the wrangler deploy (and the docker-build provider
# only its image used: without the plugin installed, Pulumi could not even delete that).
LEGACY_TYPES = (
    "cloudflare:index/worker:Worker",
    "cloudflare:index/workerVersion:WorkerVersion",
    "cloudflare:index/workersDeployment:WorkersDeployment",
    "cloudflare:index/workersCronTrigger:WorkersCronTrigger",
    "cloudflare:index/workersCustomDomain:WorkersCustomDomain",
    "docker-build:index:Image",
    "pulumi:providers:docker-build",
    "pulumi-python:dynamic/moltworker:ContainerApp",
    "pulumi-python:dynamic/moltworker:RegistryCredentials",
    "moltworker:sandbox:Sandbox",
)


def legacy_resources(export: dict[str, Any]) -> list[dict[str, Any]]:
    """The old path's resources in a `pulumi stack export`, in state order."""
    deployment = export.get("deployment")
    if not isinstance(deployment, dict):
        raise OpsError(
            "`pulumi stack export` printed no deployment; upgrade the Pulumi CLI (v3 exports "
            "{version, deployment: {resources}})."
        )
    resources = deployment.get("resources") or []
    return [
        r
        for r in resources
        if isinstance(r, dict) and r.get("type") in LEGACY_TYPES and isinstance(r.get("urn"), str)
    ]


def _blockers(export: dict[str, Any], legacy: Sequence[dict[str, Any]]) -> list[str]:
    """Resources that stay but point at one that goes; `pulumi state delete` refuses those."""
    urns = {r["urn"] for r in legacy}
    out = []
    for r in export["deployment"].get("resources") or []:
        if not isinstance(r, dict) or r.get("urn") in urns:
            continue
        # A provider reference is `<provider urn>::<provider id>`.
        refs = {r.get("parent"), str(r.get("provider") or "").rsplit("::", 1)[0] or None}
        refs |= set(r.get("dependencies") or [])
        for deps in (r.get("propertyDependencies") or {}).values():
            refs |= set(deps or [])
        if refs & urns:
            out.append(str(r.get("urn")))
    return out


def adopt(pulumi: Pulumi, stack: str, console: Console, *, yes: bool) -> None:
    export = pulumi.stack_export(stack)
    legacy = legacy_resources(export)
    if not legacy:
        # Still a reason to adopt: a first `pulumi up` that failed part-way (say, at the
        # container step) left a live script the state does not hold, which the next create
        # refuses like any Worker the stack did not make.
        console.print(f"stack {stack} holds no resources of the old deploy path.")
        if not yes:
            raise OpsError(
                "nothing changed: re-run with --yes only if the live Worker of this name is the "
                "stack's own (e.g. left by a first `pulumi up` that failed part-way); the next "
                "`pulumi up` then deploys over it."
            )
        _record(pulumi, stack, console, removed=0)
        return
    blockers = _blockers(export, legacy)
    if blockers:
        raise OpsError(
            f"nothing changed: {', '.join(blockers)} still refer(s) to resources of the old deploy "
            "path, so they cannot leave the state alone; run `pulumi up` with the program of "
            "the old path's last release first, or remove the reference."
        )
    console.print(f"Resources of the old deploy path in stack {stack} (state only):")
    for r in legacy:
        console.print(f"  {r['urn']}" + ("  [protected]" if r.get("protect") else ""))
    if not yes:
        raise OpsError(
            "nothing changed: re-run with --yes to remove them from the state (the Worker, its "
            "application and the bucket stay as they are) and let the next `pulumi up` adopt "
            "the Worker."
        )
    # The state lists dependencies before their dependents and parents before children, so
    # the reverse order meets the CLI's rule that nothing left may point at a deleted URN.
    for r in reversed(legacy):
        pulumi.state_delete(stack, r["urn"], force=bool(r.get("protect")))
    _record(pulumi, stack, console, removed=len(legacy))


def _record(pulumi: Pulumi, stack: str, console: Console, *, removed: int) -> None:
    pulumi.config_set(stack, ADOPT_KEY, "true")
    console.print(
        f"Removed {removed} resource(s) from the state and set {ADOPT_KEY}=true. Next: "
        f"`pulumi up --stack {stack}` (it deploys over the live Worker and application), then "
        f"`pulumi config rm {ADOPT_KEY} --stack {stack}`."
    )


def cmd_adopt(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    stack = check_stack_name(args.stack)
    adopt(deps.pulumi(args, console), stack, console, yes=args.yes)
    return 0


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "adopt",
        help="upgrade a stack from the old deploy path (state only; nothing is deleted)",
        description="Remove the old deploy path's resources (WorkerVersion, WorkersDeployment, "
        "worker-script, sandbox-*) from the stack's state with `pulumi state delete`, never "
        "from the account, and set moltworker:adoptWorker so the next `pulumi up` deploys over "
        "the live Worker instead of refusing it. Nothing changes without --yes.",
    )
    parser.add_argument("--stack", required=True, help="stack name: dev, staging, prod or pr-<n>")
    parser.add_argument("--yes", action="store_true", help="really change the state")
    parser.set_defaults(handler=cmd_adopt)
