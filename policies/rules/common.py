"""What every rule module shares: the validator signatures and config helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

from policies.stack_profile import StackProfile

ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation, StackProfile], None]
StackCheck = Callable[[StackValidationArgs, ReportViolation, StackProfile], None]


def config_of(args: ResourceValidationArgs | StackValidationArgs) -> Mapping[str, Any]:
    """The policy's own config from the policy pack config (empty when none is set)."""
    return args.get_config() or {}


def string_set(value: Any) -> set[str]:
    """A list-of-strings config property as a set (anything else is empty)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {str(v) for v in value}
    return set()
