"""Run the Pulumi program for a stack under mocks and judge what it registers with the pack.

The program run is the infra tests' harness (tests/infra/harness.py). Its recorded resources
are turned into exactly what the engine hands a policy pack: properties as a protobuf Struct
(numbers become floats, secrets keep their wire marker, `__` keys are dropped), then decoded by
pulumi_policy's own deserializer into its own argument classes. Mutations for the cases the
program itself refuses to produce are applied to the recorded resources before that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from policies.pack import build_policies
from policies.stack_profile import StackProfile
from tests.infra.harness import ProgramMocks, RecordedResource, run_program_full

PERMISSION_GROUP_LIST = (
    "cloudflare:index/getAccountApiTokenPermissionGroupsList:getAccountApiTokenPermissionGroupsList"
)


@dataclass
class Recorded:
    """A registered resource as the engine would show it to the pack (before decoding)."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]
    protect: bool
    parent: str
    dependencies: list[str]
    delete_before_replace: bool | None = None


@dataclass(frozen=True)
class Finding:
    policy: str
    level: str
    message: str
    urn: str


@dataclass
class StackRun:
    stack: str
    profile: StackProfile
    resources: list[Recorded]
    config: dict[str, str]
    secret_keys: list[str]

    def one(self, type_: str, name: str | None = None) -> Recorded:
        found = [r for r in self.resources if r.type == type_ and (name is None or r.name == name)]
        assert len(found) == 1, f"expected one {type_} {name or ''}, got {[r.urn for r in found]}"
        return found[0]


def record(stack: str, config_overrides: Mapping[str, str | None] | None = None) -> StackRun:
    """Run the program for `stack` under mocks; the profile is read from the live runtime."""
    run = run_program_full(stack, config_overrides)
    # The program run leaves the stack's settings and config installed in the Pulumi runtime,
    # which is exactly where the pack reads them under the engine.
    profile = StackProfile.from_runtime()
    return StackRun(
        stack, profile, [_recorded(r) for r in run.resources], run.config, run.secret_keys
    )


def _recorded(res: RecordedResource) -> Recorded:
    return Recorded(
        type=res.type,
        name=res.name,
        urn=res.urn,
        props=copy.deepcopy(res.inputs),
        protect=res.protect,
        parent=res.parent,
        dependencies=list(res.dependencies),
    )


def wire(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """The properties as the engine sends them (it skips internal `__` keys)."""
    struct = struct_pb2.Struct()
    struct.update({k: v for k, v in props.items() if not k.startswith("__")})
    return struct


def decoded(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a policy sees: pulumi_policy's decoding of the wire properties."""
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(wire(props))))


def options(res: Recorded) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        res.protect,
        [],
        res.delete_before_replace,
        [],
        PolicyCustomTimeouts(0, 0, 0),
        [],
        res.parent or None,
    )


def evaluate(
    run: StackRun, policy_config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Every policy of the pack over the recorded stack, as the engine would run them."""
    config = policy_config if policy_config is not None else account_policy_config()
    findings: list[Finding] = []
    stack_resources = _policy_resources(run.resources)
    for policy in build_policies(lambda: run.profile):
        # A policy without its own level takes the pack's (MANDATORY in policies/__main__.py).
        level = policy.enforcement_level.value if policy.enforcement_level else "mandatory"
        own = config.get(policy.name)

        def collector(
            urn: str, policy_name: str = policy.name, lvl: str = level
        ) -> Callable[..., None]:
            def report(message: str, target: str | None = None) -> None:
                findings.append(Finding(policy_name, lvl, message, target or urn))

            return report

        if isinstance(policy, ResourceValidationPolicy):
            for res in run.resources:
                args = ResourceValidationArgs(
                    res.type, decoded(res.props), res.urn, res.name, options(res), None, own
                )
                policy.validate(args, collector(res.urn))
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(stack_resources, own), collector(""))
    return findings


def _policy_resources(resources: Iterable[Recorded]) -> list[PolicyResource]:
    by_urn = {
        res.urn: PolicyResource(
            res.type, decoded(res.props), res.urn, res.name, options(res), None, None, [], {}
        )
        for res in resources
    }
    for res in resources:
        target = by_urn[res.urn]
        target.parent = by_urn.get(res.parent)
        target.dependencies = [by_urn[d] for d in res.dependencies if d in by_urn]
    return list(by_urn.values())


def permission_group_id(name: str, scope: str) -> str:
    """The id the mocked account gives a permission group (what an operator would configure)."""
    answer, _ = ProgramMocks().call(
        pulumi.runtime.MockCallArgs(
            PERMISSION_GROUP_LIST, {"name": quote(name), "scope": quote(scope)}, ""
        )
    )
    ids = [g["id"] for g in answer["results"] if g["name"] == name]
    assert len(ids) == 1, f"the mocked account lists {name!r} {len(ids)} times"
    return ids[0]


def account_policy_config() -> dict[str, dict[str, Any]]:
    """The policy pack config an operator of the mocked account sets (its permission groups)."""
    bucket_scope = "com.cloudflare.edge.r2.bucket"
    return {
        "tokens-scoped": {
            "r2PermissionGroupIds": [
                permission_group_id("Workers R2 Storage Bucket Item Write", bucket_scope),
                permission_group_id("Workers R2 Storage Bucket Item Read", bucket_scope),
            ],
            "aiGatewayRunPermissionGroupIds": [
                permission_group_id("AI Gateway Run", "com.cloudflare.api.account")
            ],
        }
    }
