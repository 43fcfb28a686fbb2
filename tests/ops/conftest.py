from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import Callable, Iterator

import boto3.session
import pytest
from botocore.config import Config as BotoConfig
from ops_fakes import Cli, MemoryPulumi, current_event_loop

from ops.context import Deps
from ops.errors import Console


@pytest.fixture(autouse=True)
def _keep_the_event_loop() -> Iterator[None]:
    # The commands call asyncio.run(), which leaves the thread without a current loop; later
    # tests elsewhere (Pulumi's mocks) expect the one they had, so it is put back.
    before = current_event_loop()
    yield
    asyncio.set_event_loop(before)


@pytest.fixture
def pulumi() -> MemoryPulumi:
    return MemoryPulumi()


@pytest.fixture
def cli(pulumi: MemoryPulumi) -> Cli:
    def factory(_args: argparse.Namespace, _console: Console) -> MemoryPulumi:
        return pulumi

    return Cli(pulumi, Deps(env={}, pulumi=factory))


@pytest.fixture
def make_bucket(moto_endpoint: str) -> Callable[[], str]:
    def create() -> str:
        bucket = f"ops-{secrets.token_hex(6)}"
        # moto refuses R2's region "auto" for creation; clients then use the bucket like R2.
        admin = boto3.session.Session().client(
            "s3",
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="admin",
            aws_secret_access_key="admin-secret",
            config=BotoConfig(s3={"addressing_style": "path"}),
        )
        admin.create_bucket(Bucket=bucket)
        return bucket

    return create


def _import_quietly() -> None:
    # pulumi_cloudflare (imported by infra.permissions, which `state-bucket` reuses) warns about
    # its own deprecated resource classes on import: not ours to fix, so kept out of the report.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pulumi_cloudflare  # noqa: F401


_import_quietly()
