"""data-bucket-protected and bucket-never-public: the agent's stored state stays and stays private.

"Cannot be replaced by a rename" is read at three levels a policy can see: the bucket is
`protect`ed (the engine then refuses to delete or replace it, including the delete of an old
URN after a logical-name change without `aliases`); its `name` is the stable per-stack name,
so a change to the naming scheme, which would force a replacement (R2 cannot rename), fails at
preview; and `delete_before_replace` is never set. The snapshot key gets the same protection:
without it every snapshot is unreadable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from policies import resources as r
from policies.rules.common import config_of, string_set
from policies.stack_profile import StackProfile

# The runtime's unlinked objects (docs/interfaces.md): the only prefix a lifecycle may expire.
TRASH_PREFIX = "trash/"


def data_bucket_protected(
    args: ResourceValidationArgs, report: ReportViolation, stack: StackProfile
) -> None:
    """Kept stacks keep their data: the bucket and the snapshot key are protected, the bucket
    keeps the one name derived from project and stack, so no refactor replaces it, no
    lifecycle rule deletes anything but the runtime's trash, and no emptier is attached."""
    if stack.ephemeral:
        return
    if args.resource_type == r.R2_BUCKET_LIFECYCLE:
        _lifecycle_problems(args, report, config_of(args))
        return
    if r.is_bucket_emptier(args.resource_type, args.props):
        report(
            f"Stack '{stack.stack}' is not ephemeral but has bucket emptier '{args.name}', which "
            f"deletes every object of bucket {r.prop(args.props, 'bucket')!r} when it is "
            "deleted or replaced: create it only for stacks with `ephemeral: true`.",
            None,
        )
        return
    kind = _kept_data_kind(args.resource_type, args.name)
    if kind is None:
        return
    where = f"{kind} '{args.name}' of stack '{stack.stack}'"
    if not args.opts.protect:
        report(
            f"{where} is not protected, so `pulumi destroy` or a refactor could delete it: "
            "pass `protect=True` to its component (only stacks with `ephemeral: true` may "
            "leave it unprotected).",
            None,
        )
    if args.opts.delete_before_replace:
        report(
            f"{where} sets `delete_before_replace`, so any replacement deletes the data before "
            "its successor exists: remove the option.",
            None,
        )
    if kind != "R2 bucket":
        return
    name = r.prop(args.props, "name")
    expected = expected_bucket_name(stack, config_of(args))
    if name != expected:
        report(
            f"{where} is named {name!r}, not the stack's stable name {expected!r}: a bucket "
            "cannot be renamed, so a changed name replaces the bucket and its snapshots. Keep "
            f"the name {expected!r} (or set the policy's `bucketName` when the stack "
            "deliberately uses another one).",
            None,
        )


def _lifecycle_problems(
    args: ResourceValidationArgs, report: ReportViolation, config: Mapping[str, Any]
) -> None:
    deletable = tuple(string_set(config.get("deletablePrefixes")) or {TRASH_PREFIX})
    bucket = r.prop(args.props, "bucketName", "bucket_name")
    for rule in r.items(r.prop(args.props, "rules")):
        deletes = r.prop(rule, "deleteObjectsTransition", "delete_objects_transition")
        if r.prop(rule, "enabled") is False or deletes is None:
            continue
        prefix = r.prop(r.mapping(r.prop(rule, "conditions")), "prefix") or ""
        if not (isinstance(prefix, str) and prefix.startswith(deletable)):
            report(
                f"Lifecycle rule {r.prop(rule, 'id')!r} of bucket {bucket!r} ('{args.name}') "
                f"deletes objects under prefix {prefix!r}: snapshot blobs are shared between "
                "generations, so their age says nothing about whether HEAD still needs them. "
                f"Limit deletion rules to {', '.join(sorted(deletable))}.",
                None,
            )


def _kept_data_kind(resource_type: str, name: str) -> str | None:
    if resource_type == r.R2_BUCKET:
        return "R2 bucket"
    # Every snapshot is encrypted with this key: without it the bucket holds noise.
    if resource_type == r.RANDOM_BYTES and name.endswith("snapshot-key"):
        return "snapshot key"
    return None


def expected_bucket_name(stack: StackProfile, config: Mapping[str, Any]) -> str:
    template = config.get("bucketName") or "{project}-{stack}-data"
    return str(template).format(project=stack.project, stack=stack.stack)


def bucket_never_public(
    args: ResourceValidationArgs, report: ReportViolation, _stack: StackProfile
) -> None:
    """No bucket of the stack is reachable from the internet: no r2.dev URL, no custom domain."""
    bucket = r.prop(args.props, "bucketName", "bucket_name")
    if args.resource_type == r.R2_MANAGED_DOMAIN and r.prop(args.props, "enabled") is not False:
        report(
            f"R2 managed domain '{args.name}' turns on the public r2.dev URL of bucket "
            f"{bucket!r}, which serves every snapshot to anyone: remove the R2ManagedDomain "
            "resource (or set `enabled=False`); the Worker and the runtime reach the bucket "
            "through its binding and the scoped token.",
            None,
        )
    elif args.resource_type == r.R2_CUSTOM_DOMAIN:
        domain = r.prop(args.props, "domain")
        report(
            f"R2 custom domain '{args.name}' publishes bucket {bucket!r} on {domain!r} for "
            "anyone to read: remove the R2CustomDomain resource; the bucket is private to the "
            "stack.",
            None,
        )
