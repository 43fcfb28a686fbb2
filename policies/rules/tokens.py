"""tokens-scoped: every API token the stack creates opens only what its one user needs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

import contract
from policies import resources as r
from policies.rules.common import config_of, string_set
from policies.stack_profile import StackProfile

# What the program requests (contract.PERMISSION_GROUPS, looked up by name in
# infra/permissions.py, which refuses an id other than the published one): on a bucket, the
# groups of bucket scope; account-wide, the others, whose ids the pack config names.
_BUCKET_GROUPS = [g for g in contract.PERMISSION_GROUPS if g.scope == contract.R2_BUCKET_SCOPE]
_ACCOUNT_GROUPS = [g for g in contract.PERMISSION_GROUPS if g.scope == contract.ACCOUNT_SCOPE]
BUCKET_GROUP_IDS = frozenset(g.published_id for g in _BUCKET_GROUPS if g.published_id)
_BUCKET_GROUP_NAMES = " / ".join(repr(g.name) for g in _BUCKET_GROUPS)
_ACCOUNT_GROUP_NAMES = " / ".join(repr(g.name) for g in _ACCOUNT_GROUPS)
R2_BUCKET_SCOPE = f"{contract.R2_BUCKET_SCOPE}."
ACCOUNT_SCOPE = f"{contract.ACCOUNT_SCOPE}."
ZONE_SCOPE = "com.cloudflare.api.account.zone."
USER_SCOPE = "com.cloudflare.api.user."
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
# <account>_<jurisdiction>_<bucket>: bucket names have no '_', jurisdictions are words.
_R2_BUCKET_KEY = re.compile(r"^([0-9a-f]{32})_([a-z]+)_([a-z0-9-]+)$")


@dataclass(frozen=True)
class _Bucket:
    account_id: str
    name: str


def tokens_scoped(args: StackValidationArgs, report: ReportViolation, _stack: StackProfile) -> None:
    """Each API token the stack creates reaches only this stack's bucket objects (R2 tokens) or
    only runs the AI Gateway (the gateway token); nothing account-wide, per zone or per user."""
    config = config_of(args)
    r2_groups = string_set(config.get("r2PermissionGroupIds")) or set(BUCKET_GROUP_IDS)
    gateway_groups = string_set(config.get("aiGatewayRunPermissionGroupIds"))
    buckets = {
        _Bucket(str(r.prop(res.props, "accountId", "account_id")), str(r.prop(res.props, "name")))
        for res in args.resources
        if res.resource_type == r.R2_BUCKET
    }
    accounts = {b.account_id for b in buckets}
    for token in args.resources:
        if token.resource_type not in r.TOKENS:
            continue
        for index, policy in enumerate(r.items(r.prop(token.props, "policies"))):
            problems = _token_policy_problems(policy, buckets, accounts, r2_groups, gateway_groups)
            for problem in problems:
                report(f"API token '{token.name}' policy #{index + 1} {problem}", token.urn)


def _token_policy_problems(
    policy: Mapping[str, Any],
    buckets: set[_Bucket],
    accounts: set[str],
    r2_groups: set[str],
    gateway_groups: set[str],
) -> list[str]:
    if r.prop(policy, "effect") == "deny":
        return []  # a deny policy only takes permissions away
    scope = r.json_object(r.prop(policy, "resources"))
    if not scope:
        return [
            "has no readable `resources` object: name the one bucket it may use, as "
            "infra/permissions.py does."
        ]
    groups = {
        str(r.prop(g, "id"))
        for g in r.items(r.prop(policy, "permissionGroups", "permission_groups"))
    }
    if not groups:
        return ["grants no permission group: remove the policy or name the group it needs."]
    own = ", ".join(sorted(repr(b.name) for b in buckets)) or "(none in this stack)"
    problems: list[str] = []
    for key, value in scope.items():
        if value != "*":
            problems.append(
                f"nests a wildcard scope under {key!r} (every zone or bucket of it): name the "
                "single bucket instead."
            )
        elif key.startswith(R2_BUCKET_SCOPE):
            problems += _bucket_grant_problems(key, groups, buckets, own, r2_groups)
        elif key.startswith(ZONE_SCOPE):
            problems.append(
                f"grants zone permissions ({key}): the stack's tokens never touch zones; "
                "remove this resource from the token."
            )
        elif key.startswith(ACCOUNT_SCOPE):
            problems += _account_grant_problems(key, groups, accounts, own, gateway_groups)
        elif key.startswith(USER_SCOPE):
            problems.append(
                f"grants user-wide permissions ({key}): scope the token to this stack's bucket."
            )
        else:
            problems.append(f"grants an unrecognised scope {key!r}: scope it to {own} only.")
    return problems


def _bucket_grant_problems(
    key: str, groups: set[str], buckets: set[_Bucket], own: str, r2_groups: set[str]
) -> list[str]:
    match = _R2_BUCKET_KEY.match(key[len(R2_BUCKET_SCOPE) :])
    problems: list[str] = []
    if match is None:
        problems.append(f"grants {key!r}, which names no single bucket: scope it to {own} only.")
    elif _Bucket(match.group(1), match.group(3)) not in buckets:
        problems.append(
            f"grants bucket {match.group(3)!r} of account {match.group(1)}, which is not this "
            f"stack's bucket ({own}): scope it to the stack's own bucket."
        )
    extra = sorted(groups - r2_groups)
    if extra:
        problems.append(
            f"gives permission groups {extra} on a bucket; only {_BUCKET_GROUP_NAMES} (what "
            "the program requests) belongs on a bucket token: drop the others."
        )
    return problems


def _account_grant_problems(
    key: str, groups: set[str], accounts: set[str], own: str, gateway_groups: set[str]
) -> list[str]:
    account = key[len(ACCOUNT_SCOPE) :]
    if not _ACCOUNT_ID.match(account):
        return [f"grants {key!r}, a wildcard over accounts: scope it to {own} only."]
    problems: list[str] = []
    if accounts and account not in accounts:
        problems.append(
            f"grants account {account}, not the stack's account: use the stack's `accountId`."
        )
    if not gateway_groups:
        problems.append(
            f"grants account-wide permission groups {sorted(groups)}, and this pack cannot tell "
            f"whether they are {_ACCOUNT_GROUP_NAMES} because the policy `tokens-scoped` has no "
            "`aiGatewayRunPermissionGroupIds`: set it to that group's id (GET "
            "/accounts/<id>/tokens/permission_groups?name=AI%20Gateway%20Run) in the policy "
            "pack config, or scope the token to the stack's bucket."
        )
        return problems
    extra = sorted(groups - gateway_groups)
    if extra:
        problems.append(
            f"grants account-wide permission groups {extra}: an account-wide token may only "
            f"run the AI Gateway ({_ACCOUNT_GROUP_NAMES}); scope R2 access to the stack's "
            "bucket and drop the rest."
        )
    return problems
