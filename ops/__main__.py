"""`python -m ops`: day-2 operations for a deployed moltworker stack (see docs/operations.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .context import Deps, stack_outputs
from .errors import Console, OpsError, Redactor
from .github import GitHub
from .outputs import ACCESS_TEAM_DOMAIN, SERVICE_TOKEN_ID, SERVICE_TOKEN_SECRET
from .pulumi_cli import ROOT, check_stack_name

# --- commands -------------------------------------------------------------------------------


def cmd_smoke(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .smoke import SmokeTarget, run_smoke, service_token_from

    outputs = stack_outputs(args, deps, console)
    client_id = outputs.optional_text(SERVICE_TOKEN_ID, secret=True) or deps.env.get(
        "CF_ACCESS_CLIENT_ID"
    )
    client_secret = outputs.optional_text(SERVICE_TOKEN_SECRET, secret=True) or deps.env.get(
        "CF_ACCESS_CLIENT_SECRET"
    )
    console.redact.add(client_id, client_secret)
    target = SmokeTarget(
        url=outputs.url(),
        team_domain=outputs.optional_text(ACCESS_TEAM_DOMAIN),
        service_token=service_token_from(client_id, client_secret),
        max_snapshot_age_s=args.max_snapshot_age,
        wait_s=args.wait,
        poll_s=args.poll_interval,
    )
    ok = run_smoke(
        target,
        console,
        with_status=not args.no_status,
        timeout_s=args.timeout,
        transport=deps.http_transport,
    )
    return 0 if ok else 1


def cmd_rotate(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .rotate import ROTATIONS, rotate

    stack = check_stack_name(args.stack)
    if not args.yes:
        console.print(f"What rotating {args.secret} breaks: {ROTATIONS[args.secret].breaks}")
        raise OpsError("nothing changed: re-run with --yes to rotate.")
    rotate(deps.pulumi(args, console), stack, args.secret, console, deploy=not args.no_up)
    return 0


def cmd_state_create(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .state_backend import create_state_bucket, write_credentials_file

    token = deps.env.get("CLOUDFLARE_API_TOKEN", "")
    if not token:
        raise OpsError(
            "CLOUDFLARE_API_TOKEN is not set: export a token with 'Workers R2 Storage: Edit' "
            "and 'Account API Tokens: Edit' (read it with `read -s`, never type it on the "
            "command line)."
        )
    console.redact.add(token)
    account_id = args.account_id or deps.env.get("CLOUDFLARE_ACCOUNT_ID", "")
    path = Path(args.credentials_file).expanduser()
    if not args.show_secrets and path.exists():
        # Checked before anything is created: the new token could not be shown again.
        raise OpsError(
            f"{path} already exists: keep it (it may hold working credentials) or move it "
            "away, or pass another --credentials-file."
        )
    creds = create_state_bucket(
        deps.cloudflare(token),
        account_id,
        args.bucket,
        args.token_name or f"pulumi-state-{args.bucket}",
        console,
    )
    console.print("")
    console.print("Log in to the state backend with:")
    console.print(f"  pulumi login '{creds.login_url}'")
    if args.show_secrets:
        console.print("Set these variables (they are shown because of --show-secrets):")
        for line in creds.env_lines():
            # Printed on purpose: bypass the redactor for exactly these lines.
            print(f"  {line}", file=deps.out or sys.stdout, flush=True)
    else:
        write_credentials_file(path, creds)
        console.print(
            f"Credentials written to {path} (mode 0600): PULUMI_BACKEND_URL, AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY. Load them with:"
        )
        console.print(f"  set -a; . {path}; set +a")
    console.print(
        "and choose a passphrase for the stacks' secrets: export PULUMI_CONFIG_PASSPHRASE"
    )
    return 0


def cmd_state_check(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .state_backend import check_backend

    url = args.backend_url or deps.env.get("PULUMI_BACKEND_URL", "")
    if not url:
        raise OpsError("pass --backend-url or set PULUMI_BACKEND_URL to the `pulumi login` URL.")
    check_backend(url, deps.env, console)
    return 0


def cmd_review_create(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .review import create

    create(deps.pulumi(args, console), args.pr, check_stack_name(args.template), console)
    return 0


def cmd_review_destroy(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .review import destroy, pr_stack

    stack = pr_stack(args.pr) if args.pr is not None else check_stack_name(args.stack)
    destroy(deps.pulumi(args, console), stack, console)
    return 0


def cmd_review_sweep(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .review import sweep

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


# --- parser ---------------------------------------------------------------------------------


def _stack_options(parser: argparse.ArgumentParser, *, outputs: bool) -> None:
    parser.add_argument("--stack", required=True, help="stack name: dev, staging, prod or pr-<n>")
    if outputs:
        parser.add_argument(
            "--outputs-file",
            help="read the stack outputs from this JSON file (`pulumi stack output --json "
            "--show-secrets`) instead of running the Pulumi CLI",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops",
        description="Day-2 operations for a deployed moltworker stack. Secrets are never printed.",
    )
    parser.add_argument(
        "--pulumi", default="pulumi", help="the Pulumi CLI binary (default: pulumi)"
    )
    parser.add_argument(
        "--project-dir", default=str(ROOT), help="directory of Pulumi.yaml (default: this checkout)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    smoke = commands.add_parser(
        "smoke",
        help="check a deployed stack: health, Access in front of admin paths, running gateway",
        description="Check a deployed stack from outside: /healthz answers, /_admin/ and "
        "/api/admin/* are refused without Access, /cdp is refused without its secret, and with "
        "an Access service token the admin status shows a running gateway and a recent snapshot.",
    )
    _stack_options(smoke, outputs=True)
    smoke.add_argument(
        "--no-status", action="store_true", help="skip the service-token status check"
    )
    smoke.add_argument(
        "--max-snapshot-age",
        type=float,
        default=86_400.0,
        metavar="SECONDS",
        help="longest acceptable age of a snapshot while changes are unsaved (default: 86400)",
    )
    smoke.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for a waking container to report ready (default: 120)",
    )
    smoke.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="pause between status polls while waiting (default: 2)",
    )
    smoke.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request")
    smoke.set_defaults(handler=cmd_smoke)

    from .rotate import ROTATIONS

    rotate = commands.add_parser(
        "rotate",
        help="rotate a generated secret and roll the Worker",
        description="Bump the secret's rotate* counter in the stack config and run `pulumi up`. "
        "Prints what the rotation breaks; nothing changes without --yes.",
    )
    rotate.add_argument("secret", choices=sorted(ROTATIONS), help="which secret to rotate")
    _stack_options(rotate, outputs=False)
    rotate.add_argument("--yes", action="store_true", help="really rotate")
    rotate.add_argument("--no-up", action="store_true", help="only bump the counter; deploy later")
    rotate.set_defaults(handler=cmd_rotate)

    state = commands.add_parser(
        "state-bucket",
        help="keep Pulumi state in an R2 bucket (create it, check it)",
        description="Pulumi state in R2 through Pulumi's S3 (DIY) backend.",
    )
    state_commands = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    create = state_commands.add_parser(
        "create",
        help="create the state bucket and a token scoped to it",
        description="Create an R2 bucket and an account API token limited to it, then print the "
        "`pulumi login` line. Reads CLOUDFLARE_API_TOKEN from the environment. The S3 "
        "credentials go to a new 0600 file unless --show-secrets prints them.",
    )
    create.add_argument(
        "--account-id", help="Cloudflare account id (default: $CLOUDFLARE_ACCOUNT_ID)"
    )
    create.add_argument("--bucket", required=True, help="state bucket name, e.g. moltworker-state")
    create.add_argument(
        "--token-name", help="name of the scoped token (default: pulumi-state-<bucket>)"
    )
    create.add_argument(
        "--credentials-file",
        default="~/.config/moltworker/pulumi-state.env",
        help="new file (mode 0600) for the S3 credentials (default: %(default)s)",
    )
    create.add_argument("--show-secrets", action="store_true", help="print the credentials instead")
    create.set_defaults(handler=cmd_state_create)
    check = state_commands.add_parser(
        "check",
        help="write, read and delete a probe object in the state backend",
        description="Use the `pulumi login` URL and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
        "to write, read back and delete a probe object, as the Pulumi CLI would.",
    )
    check.add_argument("--backend-url", help="the s3:// login URL (default: $PULUMI_BACKEND_URL)")
    check.set_defaults(handler=cmd_state_check)

    review = commands.add_parser(
        "review",
        help="ephemeral pr-<n> stacks: create, destroy, sweep leftovers",
        description="Review stacks for pull requests. Only stacks named pr-<n> whose deployed "
        "config says ephemeral=true are ever destroyed.",
    )
    review_commands = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    rcreate = review_commands.add_parser(
        "create",
        help="create pr-<n> from a template stack's config",
        description="`pulumi stack init pr-<n> --copy-config-from <template>`, then mark it "
        "ephemeral and give it an Access service token for the smoke test.",
    )
    rcreate.add_argument("--pr", type=int, required=True, help="pull request number")
    rcreate.add_argument("--template", default="staging", help="stack to copy (default: staging)")
    rcreate.set_defaults(handler=cmd_review_create)
    rdestroy = review_commands.add_parser(
        "destroy",
        help="destroy and remove pr-<n> (refuses anything else)",
        description="Destroy a review stack and remove it; refuses stacks not named pr-<n> or "
        "whose deployed config is not ephemeral.",
    )
    target = rdestroy.add_mutually_exclusive_group(required=True)
    target.add_argument("--pr", type=int, help="pull request number")
    target.add_argument("--stack", help="stack name (must be pr-<n>)")
    rdestroy.set_defaults(handler=cmd_review_destroy)
    rsweep = review_commands.add_parser(
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

    from .adopt import register as register_adopt
    from .backup import add_backup_parser
    from .doctor import register as register_doctor

    add_backup_parser(commands, _stack_options)
    from .init import register as register_init

    for register in (register_doctor, register_adopt, register_init):
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None, deps: Deps | None = None) -> int:
    deps = deps or Deps()
    console = Console(Redactor(), deps.out, deps.err)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, deps, console)
    except OpsError as exc:
        console.warn(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        console.warn("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
