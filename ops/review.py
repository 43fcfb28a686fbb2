"""Ephemeral review stacks, one per pull request: `pr-<n>`, created from a template stack.

Destroying is guarded twice: the stack must be named `pr-<n>` and the configuration it was last
deployed with must say `ephemeral: true` (read back with `pulumi config refresh`, so a local
file cannot vouch for a stack it does not describe). Production stacks fail both tests; the
infra program additionally refuses `ephemeral` on them and protects their data.
"""

from __future__ import annotations

import argparse
import re

import contract

from .context import Commands, Deps
from .errors import Console, OpsError
from .github import GitHub
from .pulumi_cli import PROJECT, Pulumi, check_stack_name

PR_STACK = re.compile(r"^pr-([1-9][0-9]{0,8})$")
EPHEMERAL_KEY = f"{PROJECT}:ephemeral"
# Settings that name physical resources: copied from the template they would collide with it.
NAMING_KEYS = (f"{PROJECT}:workerName", f"{PROJECT}:customDomain", f"{PROJECT}:zoneId")


def pr_stack(number: int) -> str:
    if number < 1 or number > 999_999_999:
        raise OpsError(f"pull request number {number} is out of range.")
    return f"pr-{number}"


def create(pulumi: Pulumi, number: int, template: str, console: Console) -> str:
    """Create `pr-<n>` (or bring back its local config) and align it with the template.

    Every CI run starts from a fresh checkout without `Pulumi.pr-<n>.yaml`, so an existing stack
    first gets its file back from its last deployment; one that never deployed has no resources
    and is simply created again. The template's config is then copied over, so a pull request
    that changes staging's config is reviewed with it.
    """
    stack = pr_stack(number)
    if PR_STACK.match(template):
        raise OpsError(f"template {template!r} is itself a review stack: use staging.")
    if contract.is_production_stack(template):
        # A review stack runs the pull request's code with the template's secrets.
        raise OpsError(
            f"template {template!r} is a production stack: review stacks must never receive "
            "production secrets; use staging."
        )
    if not pulumi.stack_exists(stack):
        pulumi.stack_init(stack, copy_config_from=template)
        console.print(f"created stack {stack} with the configuration of {template}")
    else:
        try:
            pulumi.config_refresh(stack)
            console.print(f"stack {stack} exists: restored its config from the last deployment")
        except OpsError:
            pulumi.stack_rm(stack)
            pulumi.stack_init(stack, copy_config_from=template)
            console.print(f"stack {stack} had never deployed: created it again from {template}")
        pulumi.config_copy(template, stack)
    config = pulumi.config(stack)
    clashing = [k for k in NAMING_KEYS if config.get(k)]
    if clashing:
        raise OpsError(
            f"the template {template!r} sets {', '.join(clashing)}: a review stack would take over "
            f"the template's names. Remove them from Pulumi.{template}.yaml (review stacks use "
            "moltworker-pr-<n> on workers.dev) or choose another template."
        )
    pulumi.config_set(stack, EPHEMERAL_KEY, "true")
    pulumi.config_set(stack, f"{PROJECT}:accessServiceToken", "true")
    console.print(f"{stack}: ephemeral=true (destroy empties its bucket), accessServiceToken=true")
    return stack


def destroy(pulumi: Pulumi, stack: str, console: Console) -> None:
    if not PR_STACK.match(stack):
        raise OpsError(
            f"refusing to destroy {stack!r}: only review stacks named pr-<n> are destroyed by "
            "this command. Destroy other stacks by hand with `pulumi destroy`."
        )
    if not pulumi.stack_exists(stack):
        # The pull request closed before anything deployed (or the sweep got there first).
        console.print(f"{stack}: no such stack, nothing to destroy")
        return
    try:
        pulumi.config_refresh(stack)
    except OpsError as exc:
        # No deployment to read back: a stack that never deployed. Pulumi removes it only if it
        # has no resources (no --force), which is exactly the case where nothing can be lost.
        try:
            pulumi.stack_rm(stack)
        except OpsError:
            raise exc from None
        console.print(f"{stack}: never deployed; removed the empty stack")
        return
    # Read as the program reads it ("True" is ephemeral too); a malformed value is not.
    if contract.parse_flag(pulumi.config(stack).get(EPHEMERAL_KEY), False) is not True:
        raise OpsError(
            f"refusing to destroy {stack}: its deployed configuration does not say "
            f"{EPHEMERAL_KEY}=true, so it may hold data worth keeping."
        )
    console.print(f"destroying {stack} (ephemeral) and removing the stack")
    pulumi.destroy_and_remove(stack)
    console.print(f"{stack}: destroyed and removed")


def sweep(pulumi: Pulumi, github: GitHub, repo: str, console: Console, *, dry_run: bool) -> int:
    """Destroy review stacks whose pull request is closed; returns the number of failures."""
    failures = 0
    for stack in sorted(pulumi.stack_names()):
        match = PR_STACK.match(stack)
        if not match:
            continue
        try:
            state = github.pr_state(repo, int(match.group(1)))
            if state == "open":
                console.print(f"{stack}: pull request open, keeping")
                continue
            if dry_run:
                console.print(f"{stack}: pull request closed, would destroy (dry run)")
                continue
            destroy(pulumi, stack, console)
        except OpsError as exc:
            failures += 1
            console.warn(f"{stack}: {exc}")
    return failures


# --- command line ----------------------------------------------------------------------------


def cmd_review_create(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    create(deps.pulumi(args, console), args.pr, check_stack_name(args.template), console)
    return 0


def cmd_review_destroy(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    stack = pr_stack(args.pr) if args.pr is not None else check_stack_name(args.stack)
    destroy(deps.pulumi(args, console), stack, console)
    return 0


def cmd_review_sweep(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    repo = args.repo or deps.env.get("GITHUB_REPOSITORY", "")
    if not repo:
        raise OpsError("pass --repo owner/name or set GITHUB_REPOSITORY.")
    token = deps.env.get("GITHUB_TOKEN", "")
    console.redact.add(token)
    github = GitHub(token, transport=deps.github_transport)
    try:
        failures = sweep(deps.pulumi(args, console), github, repo, console, dry_run=args.dry_run)
    finally:
        github.close()
    if failures:
        raise OpsError(f"{failures} review stack(s) could not be swept; see the lines above.")
    return 0


def register(commands: Commands) -> None:
    review = commands.add_parser(
        "review",
        help="ephemeral pr-<n> stacks: create, destroy, sweep leftovers",
        description="Review stacks for pull requests. Only stacks named pr-<n> whose deployed "
        "config says ephemeral=true are ever destroyed.",
    )
    actions = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    rcreate = actions.add_parser(
        "create",
        help="create pr-<n> from a template stack's config",
        description="`pulumi stack init pr-<n> --copy-config-from <template>`, then mark it "
        "ephemeral and give it an Access service token for the smoke test.",
    )
    rcreate.add_argument("--pr", type=int, required=True, help="pull request number")
    rcreate.add_argument("--template", default="staging", help="stack to copy (default: staging)")
    rcreate.set_defaults(handler=cmd_review_create)
    rdestroy = actions.add_parser(
        "destroy",
        help="destroy and remove pr-<n> (refuses anything else)",
        description="Destroy a review stack and remove it; refuses stacks not named pr-<n> or "
        "whose deployed config is not ephemeral.",
    )
    target = rdestroy.add_mutually_exclusive_group(required=True)
    target.add_argument("--pr", type=int, help="pull request number")
    target.add_argument("--stack", help="stack name (must be pr-<n>)")
    rdestroy.set_defaults(handler=cmd_review_destroy)
    rsweep = actions.add_parser(
        "sweep",
        help="destroy pr-<n> stacks whose pull request is closed",
        description="List pr-<n> stacks, ask GitHub (GITHUB_TOKEN) whether each pull request is "
        "still open, and destroy the stacks of closed ones.",
    )
    rsweep.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    rsweep.add_argument(
        "--dry-run", action="store_true", help="only report what would be destroyed"
    )
    rsweep.set_defaults(handler=cmd_review_sweep)
