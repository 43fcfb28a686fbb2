"""AI Gateway (authenticated, logged, rate limited), its fallback route and its run token."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_cloudflare as cloudflare

import contract
from infra import permissions

_GATEWAY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass
class AiGatewayArgs:
    account_id: str
    gateway_id: str
    primary_model: str
    fallback_models: list[str] = field(default_factory=list)
    rate_limit: int = 120
    rate_limit_interval_s: int = 60
    logs: bool = True
    cache_ttl_s: int = 0
    route_name: str = "openclaw"


def route_elements(models: list[str]) -> list[cloudflare.AiGatewayDynamicRoutingElementArgs]:
    """start -> model[0] -(fallback)-> model[1] ... -> end, in the configured order."""
    out = cloudflare.AiGatewayDynamicRoutingElementOutputsArgs
    elements = [
        cloudflare.AiGatewayDynamicRoutingElementArgs(
            id="start",
            type="start",
            outputs=out(
                next=cloudflare.AiGatewayDynamicRoutingElementOutputsNextArgs(element_id="model-0")
            ),
        )
    ]
    for i, model in enumerate(models):
        # The route splits at the first '/', as OpenClaw does: the model id may hold more.
        provider, name = model.split("/", 1)
        last = i == len(models) - 1
        elements.append(
            cloudflare.AiGatewayDynamicRoutingElementArgs(
                id=f"model-{i}",
                type="model",
                properties=cloudflare.AiGatewayDynamicRoutingElementPropertiesArgs(
                    ai_gateway_dynamic_routing_provider=provider,
                    model=name,
                    retries=1,
                    timeout=120_000,
                ),
                outputs=out(
                    success=cloudflare.AiGatewayDynamicRoutingElementOutputsSuccessArgs(
                        element_id="end"
                    ),
                    fallback=cloudflare.AiGatewayDynamicRoutingElementOutputsFallbackArgs(
                        element_id="end" if last else f"model-{i + 1}"
                    ),
                ),
            )
        )
    elements.append(
        cloudflare.AiGatewayDynamicRoutingElementArgs(id="end", type="end", outputs=out())
    )
    return elements


class AiGateway(pulumi.ComponentResource):
    base_url: pulumi.Output[str]
    token: pulumi.Output[str]
    gateway_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: AiGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:ai:AiGateway", name, None, opts)
        models = [args.primary_model, *args.fallback_models]
        bad = [m for m in models if contract.parse_model_ref(m) is None]
        if bad:
            raise ValueError(f"AiGatewayArgs: models not in provider/model form: {bad}")
        if len(set(models)) != len(models):
            raise ValueError(f"AiGatewayArgs: a model appears twice in the chain {models}")
        if not _GATEWAY_ID.match(args.gateway_id):
            raise ValueError(
                f"AiGatewayArgs.gateway_id {args.gateway_id!r}: a-z, 0-9, '-' (max 63)"
            )
        if args.rate_limit < 1 or args.rate_limit_interval_s < 1:
            raise ValueError("AiGatewayArgs: the rate limit must be on (limit and interval >= 1)")
        child = pulumi.ResourceOptions(parent=self)

        gateway = cloudflare.AiGateway(
            f"{name}-gateway",
            account_id=args.account_id,
            ai_gateway_id=args.gateway_id,
            # Without authentication anyone who learns the URL spends the provider keys.
            authentication=True,
            collect_logs=args.logs,
            cache_ttl=args.cache_ttl_s,
            cache_invalidate_on_update=True,
            rate_limiting_limit=args.rate_limit,
            rate_limiting_interval=args.rate_limit_interval_s,
            rate_limiting_technique="sliding",
            opts=child,
        )
        cloudflare.AiGatewayDynamicRouting(
            f"{name}-route",
            account_id=args.account_id,
            gateway_id=gateway.ai_gateway_id,
            name=args.route_name,
            elements=route_elements(models),
            opts=child,
        )
        run_group = permissions.permission_group_id(
            args.account_id,
            permissions.AI_GATEWAY_RUN,
            permissions.ACCOUNT_SCOPE,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        token = permissions.scoped_token(
            f"{name}-token",
            account_id=args.account_id,
            token_name=f"{args.gateway_id}-run",
            group_id=run_group,
            resources=permissions.account_resource(args.account_id),
            opts=child,
        )
        self.gateway_id = gateway.ai_gateway_id
        self.base_url = gateway.ai_gateway_id.apply(
            lambda g: f"https://gateway.ai.cloudflare.com/v1/{args.account_id}/{g}"
        )
        self.token = pulumi.Output.secret(token.value)
        self.register_outputs(
            {"base_url": self.base_url, "token": self.token, "gateway_id": self.gateway_id}
        )
