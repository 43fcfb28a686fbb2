"""Rotate a generated secret: bump its keeper counter in the stack config, then roll out.

The program's random secrets are replaced only when their `rotate*` counter changes (it is the
resource's keeper), so a rotation is an ordinary, reviewable config change followed by
`pulumi up`. The snapshot key is deliberately not rotatable here: it decrypts every stored
snapshot, and replacing it would make them unreadable.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .context import Commands, Deps, add_stack_options
from .errors import Console, OpsError
from .pulumi_cli import PROJECT, Pulumi, check_stack_name


@dataclass(frozen=True)
class Rotation:
    # The program's name for the secret: infra.settings.ROTATABLE, kept in step by
    # tests/ops/test_ops_rotate.py (importing infra here would load Pulumi for every command).
    name: str
    breaks: str

    @property
    def config_key(self) -> str:
        return f"{PROJECT}:rotate{self.name[0].upper()}{self.name[1:]}"


ROTATIONS = {
    "gateway-token": Rotation(
        "gatewayToken",
        "Every Control UI tab and client that connected with the old gateway token is refused "
        "and must reconnect with the new one (`pulumi stack output gatewayToken --show-secrets`); "
        "browsers and devices that were paired with the old token must pair again (approve them "
        "in the admin UI under Devices). Chat channels (Telegram, Discord, Slack) keep working.",
    ),
    "control-secret": Rotation(
        "controlSecret",
        "The admin UI and API answer 401 until the container restarts with the new key (the "
        "Worker passes it at container start): restart the container after the rollout, e.g. by "
        "waiting for it to sleep or redeploying the image. Chats are not affected.",
    ),
    "cdp-secret": Rotation(
        "cdpSecret",
        "The agent's browser tool fails until the container restarts with the new secret (the "
        "running runtime still sends the old one to /cdp). Chats without the browser keep working.",
    ),
}


def rotate(pulumi: Pulumi, stack: str, which: str, console: Console, *, deploy: bool) -> int:
    rotation = ROTATIONS.get(which)
    if rotation is None:
        raise OpsError(f"{which!r} cannot be rotated; choose one of {', '.join(ROTATIONS)}.")
    raw = pulumi.config(stack).get(rotation.config_key, "0")
    try:
        current = int(raw)
    except ValueError:
        raise OpsError(
            f"{rotation.config_key} is {raw!r} in stack {stack}, not a whole number: fix it with "
            f"`pulumi config set {rotation.config_key} 0 --stack {stack}`."
        ) from None
    new = current + 1
    console.print(f"What this rotation breaks: {rotation.breaks}")
    pulumi.config_set(stack, rotation.config_key, str(new))
    console.print(f"{stack}: {rotation.config_key} {current} -> {new}")
    if deploy:
        pulumi.up(stack)
        console.print(f"{stack}: rolled out the new {which}")
    else:
        console.print(f"not deployed (--no-up): run `pulumi up --stack {stack}` to roll it out")
    return new


# --- command line ----------------------------------------------------------------------------


def cmd_rotate(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    stack = check_stack_name(args.stack)
    if not args.yes:
        console.print(f"What rotating {args.secret} breaks: {ROTATIONS[args.secret].breaks}")
        raise OpsError("nothing changed: re-run with --yes to rotate.")
    rotate(deps.pulumi(args, console), stack, args.secret, console, deploy=not args.no_up)
    return 0


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "rotate",
        help="rotate a generated secret and roll the Worker",
        description="Bump the secret's rotate* counter in the stack config and run `pulumi up`. "
        "Prints what the rotation breaks; nothing changes without --yes.",
    )
    parser.add_argument("secret", choices=sorted(ROTATIONS), help="which secret to rotate")
    add_stack_options(parser, outputs=False)
    parser.add_argument("--yes", action="store_true", help="really rotate")
    parser.add_argument("--no-up", action="store_true", help="only bump the counter; deploy later")
    parser.set_defaults(handler=cmd_rotate)
