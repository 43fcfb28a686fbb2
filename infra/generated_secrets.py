"""Secrets the program generates itself, stable until a `rotate*` counter is bumped."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_random as random


@dataclass
class GeneratedSecretsArgs:
    # Bumping a counter replaces only that secret (it is the random resource's keeper).
    rotate: dict[str, int] = field(default_factory=dict)
    # The snapshot key decrypts every stored snapshot: losing or replacing it loses the data,
    # so it is protected unless the stack is ephemeral and it has no rotation counter.
    protect_snapshot_key: bool = True


class GeneratedSecrets(pulumi.ComponentResource):
    gateway_token: pulumi.Output[str]
    control_secret: pulumi.Output[str]
    cdp_secret: pulumi.Output[str]
    snapshot_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: GeneratedSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:secrets:GeneratedSecrets", name, None, opts)
        unknown = set(args.rotate) - {"gatewayToken", "controlSecret", "cdpSecret"}
        if unknown:
            raise ValueError(f"GeneratedSecretsArgs.rotate: unknown secret(s) {sorted(unknown)}")
        child = pulumi.ResourceOptions(parent=self)

        def password(role: str, key: str, length: int) -> pulumi.Output[str]:
            secret = random.RandomPassword(
                f"{name}-{role}",
                length=length,
                special=False,
                keepers={"rotate": str(args.rotate.get(key, 0))},
                opts=child,
            )
            return pulumi.Output.secret(secret.result)

        self.gateway_token = password("gateway-token", "gatewayToken", 48)
        # >= 32 bytes for HS256 (docs/interfaces.md); 64 alphanumerics carry ~380 bits.
        self.control_secret = password("control-secret", "controlSecret", 64)
        self.cdp_secret = password("cdp-secret", "cdpSecret", 48)
        key = random.RandomBytes(
            f"{name}-snapshot-key",
            length=32,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect_snapshot_key),
        )
        self.snapshot_key = pulumi.Output.secret(key.base64)
        self.register_outputs(
            {
                "gateway_token": self.gateway_token,
                "control_secret": self.control_secret,
                "cdp_secret": self.cdp_secret,
                "snapshot_key": self.snapshot_key,
            }
        )
