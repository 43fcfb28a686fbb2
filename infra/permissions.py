"""Look up Cloudflare permission-group ids by name (the groups are the contract's table)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_cloudflare as cloudflare

import contract
from contract import ACCOUNT_SCOPE, R2_BUCKET_SCOPE

# Exact names as the API lists them (GET /accounts/{id}/tokens/permission_groups); ops and the
# preflight import them from here.
R2_BUCKET_ITEM_WRITE = contract.R2_BUCKET_ITEM_WRITE.name
AI_GATEWAY_RUN = contract.AI_GATEWAY_RUN.name
_GROUPS = {g.name: g for g in contract.PERMISSION_GROUPS}


def permission_group_id(
    account_id: str, name: str, scope: str, opts: pulumi.InvokeOutputOptions | None = None
) -> pulumi.Output[str]:
    """The id of the permission group called exactly `name`; fails naming it when absent.

    Only the contract's groups are requested, and one whose id Cloudflare publishes must have
    that id: the policy pack allows exactly those ids, so a different one is refused here, at
    preview, with the reason, rather than by the pack.
    """
    group = _GROUPS.get(name)
    if group is None or group.scope != scope:
        raise ValueError(
            f"permission group {name!r} (scope {scope}) is not in contract.PERMISSION_GROUPS; "
            "add it there so the policy pack checks it too"
        )
    found = cloudflare.get_account_api_token_permission_groups_list_output(
        account_id=account_id, name=quote(name), scope=quote(scope), opts=opts
    )

    # Typed loosely: the generated result class subclasses dict, which confuses `.id`.
    def pick(results: list[Any]) -> str:
        exact = [str(g.id) for g in results if g.name == name]
        if len(exact) != 1:
            raise ValueError(
                f"permission group {name!r} (scope {scope}) was found {len(exact)} times in "
                f"account {account_id}; the API token needs 'Account API Tokens Read' to list "
                "permission groups, and the account must have the product enabled"
            )
        if group.published_id and exact[0] != group.published_id:
            raise ValueError(
                f"permission group {name!r} has id {exact[0]} in account {account_id}, not the "
                f"published {group.published_id} the policy pack (tokens-scoped) allows; "
                "check the account's permission groups and contract.PERMISSION_GROUPS"
            )
        return exact[0]

    return found.results.apply(pick)


def r2_bucket_resource(account_id: str, bucket: str, jurisdiction: str = "default") -> str:
    """The token policy resource naming one bucket (R2's `<account>_<jurisdiction>_<bucket>`)."""
    return json.dumps({f"{R2_BUCKET_SCOPE}.{account_id}_{jurisdiction}_{bucket}": "*"})


def account_resource(account_id: str) -> str:
    return json.dumps({f"{ACCOUNT_SCOPE}.{account_id}": "*"})


def scoped_token(
    resource_name: str,
    *,
    account_id: str,
    token_name: pulumi.Input[str],
    group_id: pulumi.Input[str],
    resources: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> cloudflare.AccountToken:
    """An account token allowed exactly one permission group on exactly `resources`.

    Every token the stack creates has this shape; the policy pack's tokens-scoped rule checks it.
    """
    return cloudflare.AccountToken(
        resource_name,
        account_id=account_id,
        name=token_name,
        policies=[
            cloudflare.AccountTokenPolicyArgs(
                effect="allow",
                permission_groups=[cloudflare.AccountTokenPolicyPermissionGroupArgs(id=group_id)],
                resources=resources,
            )
        ],
        opts=opts,
    )
