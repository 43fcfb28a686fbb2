"""The validators of the moltworker policy pack, and the table the pack is built from.

Each rule is a plain function over pulumi_policy's own argument objects plus the
`StackProfile` of the stack under review, so tests call it directly with constructed arguments
and collect what it reports. Every message names the resource and says how to fix it; none
quotes a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass

from pulumi_policy import EnforcementLevel, PolicyConfigSchema

from policies.rules.access import access_protects_admin, worker_hostnames
from policies.rules.common import ResourceCheck, StackCheck
from policies.rules.container import (
    DEFAULT_MAX_INSTANCES,
    MAX_INSTANCES_BOUND,
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
from policies.rules.tokens import BUCKET_GROUP_IDS, tokens_scoped
from policies.rules.worker import no_dev_switches, secrets_in_secret_bindings, sleep_never_cost

__all__ = [
    "RULES",
    "ResourceCheck",
    "ResourceRule",
    "Rule",
    "StackCheck",
    "StackRule",
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


@dataclass(frozen=True, kw_only=True)
class ResourceRule:
    """A rule the engine runs on each resource before it is created or updated."""

    name: str
    description: str
    check: ResourceCheck
    level: EnforcementLevel = EnforcementLevel.MANDATORY
    config: PolicyConfigSchema | None = None


@dataclass(frozen=True, kw_only=True)
class StackRule:
    """A rule the engine runs once over every resource of the stack (cross-resource checks)."""

    name: str
    description: str
    check: StackCheck
    level: EnforcementLevel = EnforcementLevel.MANDATORY
    config: PolicyConfigSchema | None = None


Rule = ResourceRule | StackRule


RULES: tuple[Rule, ...] = (
    ResourceRule(
        name="data-bucket-protected",
        description=(
            "Non-ephemeral stacks protect their R2 bucket and snapshot key, keep the bucket's "
            "per-stack name and expire only trash/, so no destroy, rename, refactor or lifecycle "
            "rule can delete the agent's data."
        ),
        check=data_bucket_protected,
        config=PolicyConfigSchema(
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
    ResourceRule(
        name="bucket-never-public",
        description=(
            "The stack's R2 bucket is never public: no r2.dev managed domain, no custom domain."
        ),
        check=bucket_never_public,
    ),
    StackRule(
        name="tokens-scoped",
        description=(
            "API tokens the stack creates reach only its own bucket's objects, or only run the AI "
            "Gateway; never account-wide, zone or user permissions."
        ),
        check=tokens_scoped,
        config=PolicyConfigSchema(
            {
                "r2PermissionGroupIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Permission groups allowed on the stack's bucket (default: "
                    "the published ids of the groups the program requests on it).",
                    "default": sorted(BUCKET_GROUP_IDS),
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
    StackRule(
        name="access-protects-admin",
        description=(
            "A Zero Trust Access application covers /_admin/*, /api/* and /debug/* of the Worker's "
            "hostname and admits only named people or groups, never everyone."
        ),
        check=access_protects_admin,
    ),
    ResourceRule(
        name="no-dev-switches",
        description=(
            "Deployed Workers carry no local-backend or auth-bypass switch, and debug routes only "
            "on non-production stacks configured for them."
        ),
        check=no_dev_switches,
    ),
    ResourceRule(
        name="secrets-in-secret-bindings",
        description=(
            "Every secret the Worker receives is a secret_text binding, never plain text, and "
            "none is baked into the sandbox image as a build argument."
        ),
        check=secrets_in_secret_bindings,
    ),
    ResourceRule(
        name="ai-gateway-authenticated",
        description="The AI Gateway requires authentication.",
        check=ai_gateway_authenticated,
    ),
    ResourceRule(
        name="container-bounded",
        description=(
            "The container application's max_instances stays within the pack's bound (1 unless "
            "configured)."
        ),
        check=container_bounded,
        config=PolicyConfigSchema(
            {
                "maxInstances": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_INSTANCES_BOUND,
                    "description": "Largest max_instances allowed for the container (at most "
                    "the program's own bound).",
                    "default": DEFAULT_MAX_INSTANCES,
                }
            }
        ),
    ),
    ResourceRule(
        name="pinned-versions",
        description=(
            "The container image is pinned by digest and built for an exact OpenClaw version."
        ),
        check=pinned_versions,
    ),
    ResourceRule(
        name="sleep-never-cost",
        description="Non-production stacks let the container sleep when idle (cost warning).",
        check=sleep_never_cost,
        level=EnforcementLevel.ADVISORY,
    ),
)
