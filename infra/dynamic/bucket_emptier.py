"""Empties an ephemeral stack's R2 bucket when the stack is destroyed.

R2 refuses to delete a bucket that still holds objects, so `pulumi destroy` of a test stack would
stop half way. This resource does nothing on create; its delete removes every object and aborts
every unfinished multipart upload through R2's S3 API (boto3, the stack's scoped token). The
Storage component makes it depend on the bucket, so Pulumi deletes it before the bucket. It is
only ever created for stacks marked ephemeral.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)


def s3_client(props: dict[str, Any]) -> Any:
    import boto3  # imported here: only the provider process needs it
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=props["endpoint"],
        aws_access_key_id=props["access_key_id"],
        aws_secret_access_key=props["secret_access_key"],
        region_name="auto",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def empty_bucket(s3: Any, bucket: str, page_size: int = 1000) -> int:
    """Delete every object and abort every multipart upload; returns the objects deleted.

    page_size is also the delete batch (S3 DeleteObjects takes at most 1000 keys).
    """
    deleted = 0
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not keys:
            continue
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"emptying bucket {bucket!r}: {len(errors)} object(s) could not be deleted "
                f"(first: {first.get('Key')!r}: {first.get('Code')}); the scoped token needs "
                "Object Read & Write on the bucket; run `pulumi destroy` again"
            )
        deleted += len(keys)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return deleted


PROPS = ("endpoint", "bucket", "access_key_id", "secret_access_key")


class BucketEmptierProvider(ResourceProvider):
    """Empties on delete only while the stack's *current* config says `ephemeral: true`.

    Turning a stack from ephemeral to kept removes this resource from the program, and Pulumi
    then deletes it in that same `up`; without this check that delete would wipe a bucket the
    stack now means to keep. The engine hands dynamic providers the stack's config through
    `configure`; when it is absent or says false, delete leaves every object in place (a
    destroy then stops at the non-empty bucket instead of losing data).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stack_is_ephemeral = False

    def configure(self, req: ConfigureRequest) -> None:
        value = req.config.get("moltworker:ephemeral")
        self.stack_is_ephemeral = str(value).strip().lower() == "true"

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"empty-on-delete-{props['bucket']}", dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the properties, never the serialized provider (`__provider`), which may differ
        # between machines without meaning anything.
        changed = [k for k in PROPS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "bucket"])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(dict(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if not self.stack_is_ephemeral:
            pulumi.log.warn(
                f"bucket {props.get('bucket')!r} was not emptied: the stack is no longer "
                "ephemeral (moltworker:ephemeral is not true), so its data is kept"
            )
            return
        s3 = s3_client(props)
        try:
            empty_bucket(s3, props["bucket"])
        except s3.exceptions.NoSuchBucket:
            return  # already gone


class BucketEmptier(Resource, module="moltworker", name="BucketEmptier"):
    def __init__(
        self,
        name: str,
        *,
        endpoint: pulumi.Input[str],
        bucket: pulumi.Input[str],
        access_key_id: pulumi.Input[str],
        secret_access_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            BucketEmptierProvider(),
            name,
            {
                "endpoint": endpoint,
                "bucket": bucket,
                "access_key_id": pulumi.Output.secret(access_key_id),
                "secret_access_key": pulumi.Output.secret(secret_access_key),
            },
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    additional_secret_outputs=["access_key_id", "secret_access_key"]
                ),
            ),
        )
