"""The stack's R2 bucket, its lifecycle rules and the one token that may touch its objects."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

from infra import permissions
from infra.dynamic.bucket_emptier import BucketEmptier

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Objects under this prefix are garbage the runtime has already unlinked (docs/interfaces.md);
# the lifecycle may delete them. Nothing the runtime reads (HEAD, manifests, blobs under
# snapshots/) ever lives here, so no age rule can remove live state.
TRASH_PREFIX = "trash/"


@dataclass
class StorageArgs:
    account_id: str
    bucket_name: str
    trash_days: int = 30
    multipart_abort_days: int = 7
    # An ephemeral stack empties its bucket on destroy; a kept one never does.
    ephemeral: bool = False
    location: str | None = None


def s3_secret(token_value: str) -> str:
    """R2's S3 secret access key for an API token: the SHA-256 of the token value, hex."""
    return hashlib.sha256(token_value.encode()).hexdigest()


class Storage(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moltworker:storage:Storage", name, None, opts)
        if not _BUCKET_NAME.match(args.bucket_name):
            raise ValueError(
                f"StorageArgs.bucket_name {args.bucket_name!r}: R2 bucket names are 3-63 "
                "lowercase letters, digits and '-'"
            )
        if args.trash_days < 1 or args.multipart_abort_days < 1:
            raise ValueError("StorageArgs: lifecycle ages must be at least one day")
        child = pulumi.ResourceOptions(parent=self)

        bucket = cloudflare.R2Bucket(
            f"{name}-bucket",
            account_id=args.account_id,
            name=args.bucket_name,
            location=args.location,
            storage_class="Standard",
            opts=child,
        )
        day = 24 * 3600
        cloudflare.R2BucketLifecycle(
            f"{name}-lifecycle",
            account_id=args.account_id,
            bucket_name=bucket.name,
            rules=[
                # Unfinished multipart uploads are never part of a snapshot (HEAD only moves
                # after a complete write), so aborting old ones cannot touch live data.
                cloudflare.R2BucketLifecycleRuleArgs(
                    id="abort-incomplete-multipart-uploads",
                    enabled=True,
                    conditions=cloudflare.R2BucketLifecycleRuleConditionsArgs(prefix=""),
                    abort_multipart_uploads_transition=cloudflare.R2BucketLifecycleRuleAbortMultipartUploadsTransitionArgs(
                        condition=cloudflare.R2BucketLifecycleRuleAbortMultipartUploadsTransitionConditionArgs(
                            type="Age", max_age=args.multipart_abort_days * day
                        )
                    ),
                ),
                # Deliberately no age rule on snapshots/: blobs are content-addressed and shared
                # by generations, so an old blob may belong to the current HEAD.
                cloudflare.R2BucketLifecycleRuleArgs(
                    id="expire-trash",
                    enabled=True,
                    conditions=cloudflare.R2BucketLifecycleRuleConditionsArgs(prefix=TRASH_PREFIX),
                    delete_objects_transition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionArgs(
                        condition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionConditionArgs(
                            type="Age", max_age=args.trash_days * day
                        )
                    ),
                ),
            ],
            opts=child,
        )

        write_group = permissions.permission_group_id(
            args.account_id,
            permissions.R2_BUCKET_ITEM_WRITE,
            permissions.R2_BUCKET_SCOPE,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        token = permissions.scoped_token(
            f"{name}-token",
            account_id=args.account_id,
            token_name=f"{args.bucket_name}-objects",
            group_id=write_group,
            resources=bucket.name.apply(
                lambda b: permissions.r2_bucket_resource(args.account_id, b)
            ),
            opts=child,
        )

        self.bucket_name = bucket.name
        self.endpoint = pulumi.Output.from_input(
            f"https://{args.account_id}.r2.cloudflarestorage.com"
        )
        self.access_key_id = pulumi.Output.secret(token.id)
        self.secret_access_key = pulumi.Output.secret(token.value.apply(s3_secret))

        if args.ephemeral:
            BucketEmptier(
                f"{name}-emptier",
                endpoint=self.endpoint,
                bucket=bucket.name,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                # Depending on the bucket and the token makes Pulumi delete the emptier (and so
                # empty the bucket) first, while the token still works.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[bucket, token]),
            )

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "endpoint": self.endpoint,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
            }
        )
