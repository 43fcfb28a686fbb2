"""The pulumi_policy policies of the pack, built from `policies.rules.RULES`.

Building policies starts nothing (only `PolicyPack` does, in `__main__.py`), so tests can run
each policy exactly as the engine would, through its `validate`.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import RULES, ResourceRule, Rule
from policies.stack_profile import StackProfile

PACK_NAME = "moltworker"

ProfileSource = Callable[[], StackProfile]


def build_policies(profile: ProfileSource = StackProfile.from_runtime) -> list[Policy]:
    """One pulumi_policy policy per rule; each reads the stack's profile when it runs."""
    return [_policy(rule, profile) for rule in RULES]


def _policy(rule: Rule, profile: ProfileSource) -> Policy:
    if isinstance(rule, ResourceRule):
        resource_check = rule.check

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            resource_check(args, report, profile())

        return ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=validate_resource,
            enforcement_level=rule.level,
            config_schema=rule.config,
        )
    stack_check = rule.check

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        stack_check(args, report, profile())

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate_stack,
        enforcement_level=rule.level,
        config_schema=rule.config,
    )
