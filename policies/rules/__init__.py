"""The validators of the moltworker policy pack, and the table the pack is built from.

Each rule is a plain function over pulumi_policy's own argument objects plus the
`StackProfile` of the stack under review, so tests call it directly with constructed arguments
and collect what it reports. Every message names the resource and says how to fix it; none
quotes a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pulumi_policy import EnforcementLevel, PolicyConfigSchema

from policies.rules.access import access_protects_admin, worker_hostnames
from policies.rules.common import ResourceCheck, StackCheck
from policies.rules.container import (
    DEFAULT_MAX_INSTANCES,
    ai_gateway_authenticated,
    container_bounded,
    pinned_versions,
)
from policies.rules.data import (
    TRASH_PREFIX,
    bucket_never_public,
    data_bucket_protected,
    expected_bucket_name,
)
from policies.rules.tokens import R2_BUCKET_ITEM_READ, R2_BUCKET_ITEM_WRITE, tokens_scoped
from policies.rules.worker import no_dev_switches, secrets_in_secret_bindings, sleep_never_cost

__all__ = [
    "RULES",
    "ResourceCheck",
    "Rule",
    "StackCheck",
    "access_protects_admin",
    "ai_gateway_authenticated",
    "bucket_never_public",
    "container_bounded",
    "data_bucket_protected",
    "expected_bucket_name",
    "no_dev_switches",
    "pinned_versions",
    "secrets_in_secret_bindings",
    "sleep_never_cost",
    "tokens_scoped",
    "worker_hostnames",
]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: EnforcementLevel
    scope: Literal["resource", "stack"]
    check: ResourceCheck | StackCheck
    config: PolicyConfigSchema | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "data-bucket-protected",
        "Non-ephemeral stacks protect their R2 bucket and snapshot key and keep the bucket's "
        "per-stack name, so no destroy, rename or refactor can delete the agent's data.",
        EnforcementLevel.MANDATORY,
        "resource",
        data_bucket_protected,
        PolicyConfigSchema(
            {
                "bucketName": {
                    "type": "string",
                    "description": "Expected bucket name; {project} and {stack} are replaced.",
                    "default": "{project}-{stack}-data",
                },
                "deletablePrefixes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Object prefixes a lifecycle rule may delete.",
                    "default": [TRASH_PREFIX],
                },
            }
        ),
    ),
    Rule(
        "bucket-never-public",
        "The stack's R2 bucket is never public: no r2.dev managed domain, no custom domain.",
        EnforcementLevel.MANDATORY,
        "resource",
        bucket_never_public,
    ),
    Rule(
        "tokens-scoped",
        "API tokens the stack creates reach only its own bucket's objects, or only run the AI "
        "Gateway; never account-wide, zone or user permissions.",
        EnforcementLevel.MANDATORY,
        "stack",
        tokens_scoped,
        PolicyConfigSchema(
            {
                "r2PermissionGroupIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Permission groups allowed on the stack's bucket.",
                    "default": [R2_BUCKET_ITEM_READ, R2_BUCKET_ITEM_WRITE],
                },
                "aiGatewayRunPermissionGroupIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Id(s) of the 'AI Gateway Run' permission group, the only "
                    "account-wide grant allowed.",
                    "default": [],
                },
            }
        ),
    ),
    Rule(
        "access-protects-admin",
        "A Zero Trust Access application covers /_admin/*, /api/* and /debug/* of the Worker's "
        "hostname and admits only named people or groups, never everyone.",
        EnforcementLevel.MANDATORY,
        "stack",
        access_protects_admin,
    ),
    Rule(
        "no-dev-switches",
        "Deployed Workers carry no local-backend or auth-bypass switch, and debug routes only "
        "on non-production stacks configured for them.",
        EnforcementLevel.MANDATORY,
        "resource",
        no_dev_switches,
    ),
    Rule(
        "secrets-in-secret-bindings",
        "Every secret the Worker receives is a secret_text binding, never plain text.",
        EnforcementLevel.MANDATORY,
        "resource",
        secrets_in_secret_bindings,
    ),
    Rule(
        "ai-gateway-authenticated",
        "The AI Gateway requires authentication.",
        EnforcementLevel.MANDATORY,
        "resource",
        ai_gateway_authenticated,
    ),
    Rule(
        "container-bounded",
        "The container application's max_instances stays within the pack's bound (1 unless "
        "configured).",
        EnforcementLevel.MANDATORY,
        "resource",
        container_bounded,
        PolicyConfigSchema(
            {
                "maxInstances": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Largest max_instances allowed for the container.",
                    "default": DEFAULT_MAX_INSTANCES,
                }
            }
        ),
    ),
    Rule(
        "pinned-versions",
        "The container image is pinned by digest and built for an exact OpenClaw version.",
        EnforcementLevel.MANDATORY,
        "resource",
        pinned_versions,
    ),
    Rule(
        "sleep-never-cost",
        "Non-production stacks let the container sleep when idle (cost warning).",
        EnforcementLevel.ADVISORY,
        "resource",
        sleep_never_cost,
    ),
)
