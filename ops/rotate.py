"""Rotate a generated secret: bump its keeper counter in the stack config, then roll out.

The program's random secrets are replaced only when their `rotate*` counter changes (it is the
resource's keeper), so a rotation is an ordinary, reviewable config change followed by
`pulumi up`. The snapshot key is deliberately not rotatable here: it decrypts every stored
snapshot, and replacing it would make them unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Console, OpsError
from .pulumi_cli import PROJECT, Pulumi


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
