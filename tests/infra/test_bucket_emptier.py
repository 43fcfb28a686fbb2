"""The ephemeral-stack bucket emptier against a local S3 server (moto)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from pulumi.dynamic import Config, ConfigureRequest

from infra.dynamic.bucket_emptier import BucketEmptierProvider, empty_bucket, s3_client

pytestmark = [pytest.mark.s3, pytest.mark.timeout(60)]


def ephemeral_provider(value: str = "true") -> BucketEmptierProvider:
    provider = BucketEmptierProvider()
    # What the engine does before any call: hand the provider the stack's config.
    provider.configure(ConfigureRequest(Config({"moltworker:ephemeral": value}, "moltworker")))
    return provider


def props(endpoint: str, bucket: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "bucket": bucket,
        "access_key_id": "test-key-id",
        "secret_access_key": "test-secret",
    }


def test_delete_empties_the_bucket_so_it_can_be_deleted(moto_endpoint: str) -> None:
    p = props(moto_endpoint, "moltworker-pr-7-data")
    s3 = s3_client(p)
    # R2's region is "auto"; moto only creates buckets in a real AWS region.
    admin = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret",
    )
    admin.create_bucket(Bucket=p["bucket"])
    # Several delete batches and every kind of key the runtime writes.
    for i in range(25):
        s3.put_object(Bucket=p["bucket"], Key=f"snapshots/blobs/{i:04d}", Body=b"x")
    s3.put_object(Bucket=p["bucket"], Key="snapshots/HEAD", Body=b"gen-1")
    s3.put_object(Bucket=p["bucket"], Key="trash/old", Body=b"y")
    upload = s3.create_multipart_upload(Bucket=p["bucket"], Key="snapshots/big")
    provider = ephemeral_provider()
    created = provider.create(p)
    assert created.id == "empty-on-delete-moltworker-pr-7-data"
    assert s3.list_objects_v2(Bucket=p["bucket"])["KeyCount"] == 27  # create touches nothing

    assert empty_bucket(s3, p["bucket"], page_size=10) == 27
    s3.put_object(Bucket=p["bucket"], Key="snapshots/HEAD", Body=b"gen-2")
    provider.delete(created.id, p)  # the provider path, default batch size

    assert s3.list_objects_v2(Bucket=p["bucket"]).get("KeyCount") == 0
    assert not s3.list_multipart_uploads(Bucket=p["bucket"]).get("Uploads")
    assert upload["UploadId"]
    s3.delete_bucket(Bucket=p["bucket"])  # what the bucket resource's delete then does


def test_delete_of_a_missing_bucket_is_done(moto_endpoint: str) -> None:
    ephemeral_provider().delete("x", props(moto_endpoint, "never-created-bucket"))


class _RefusingS3:
    """An S3 client whose deletes are refused per object, as with a read-only token."""

    class _Pages:
        def __init__(self, pages: list[dict[str, Any]]) -> None:
            self.pages = pages

        def paginate(self, **_: Any) -> list[dict[str, Any]]:
            return self.pages

    def get_paginator(self, name: str) -> _Pages:
        if name == "list_objects_v2":
            return self._Pages([{"Contents": [{"Key": "snapshots/HEAD"}]}])
        return self._Pages([])

    def delete_objects(self, **_: Any) -> dict[str, Any]:
        return {"Errors": [{"Key": "snapshots/HEAD", "Code": "AccessDenied"}]}


def test_refused_deletes_stop_the_destroy_with_the_reason() -> None:
    with pytest.raises(RuntimeError) as err:
        empty_bucket(_RefusingS3(), "b")
    assert "1 object(s) could not be deleted" in str(err.value)
    assert "'snapshots/HEAD': AccessDenied" in str(err.value)
    assert "Object Read & Write" in str(err.value)


@pytest.mark.parametrize("configured", [None, "false"])
def test_a_stack_turned_kept_never_loses_its_objects(
    moto_endpoint: str, configured: str | None
) -> None:
    """ephemeral true -> false removes the emptier; its delete must then leave the data alone."""
    p = props(moto_endpoint, f"kept-{configured}")
    admin = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret",
    )
    admin.create_bucket(Bucket=p["bucket"])
    admin.put_object(Bucket=p["bucket"], Key="snapshots/HEAD", Body=b"gen-9")
    provider = BucketEmptierProvider() if configured is None else ephemeral_provider(configured)
    provider.delete("id", p)
    assert admin.list_objects_v2(Bucket=p["bucket"])["KeyCount"] == 1
