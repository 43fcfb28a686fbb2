"""Snapshot subsystem against a real S3 server (moto in server mode) and injected faults.

moto 5.2.5 enforces `If-None-Match: *` and `If-Match` on PutObject with 412 (checked by
test_server_enforces_conditional_writes, so a moto that stops doing so fails loudly instead of
letting the race tests pass vacuously).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from sandbox_runtime.snapshots import HeadConflict, StoreUnavailable, open_store
from sandbox_runtime.snapshots.s3store import S3Settings, S3Store
from snapshot_helpers import (
    KEY,
    check_kept_generation_survives_pruning,
    db_rows,
    kill_rounds,
    make_state,
    manager,
    put_row,
    read_head_manifest,
)

pytestmark = [pytest.mark.s3, pytest.mark.timeout(90)]


def r2_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "MOLT_STORE": "r2",
        "R2_ENDPOINT": endpoint,
        "R2_BUCKET": bucket,
        "R2_ACCESS_KEY_ID": "test-key-id",
        "R2_SECRET_ACCESS_KEY": "test-secret",
        "MOLT_SNAPSHOT_KEY": base64.b64encode(KEY).decode(),
    }


@pytest.fixture
def bucket_env(moto_endpoint: str) -> dict[str, str]:
    bucket = f"molt-{secrets.token_hex(6)}"
    env = r2_env(moto_endpoint, bucket)
    # moto ties buckets to a region and refuses R2's "auto" for creation; the runtime's own
    # client (region "auto") then reads and writes the bucket like R2.
    admin = boto3.session.Session().client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret",
        config=Config(s3={"addressing_style": "path"}),
    )
    admin.create_bucket(Bucket=bucket)
    return env


@pytest.fixture
def store(bucket_env: dict[str, str]) -> S3Store:
    store = open_store(bucket_env)
    assert isinstance(store, S3Store)
    return store


def test_server_enforces_conditional_writes(store: S3Store) -> None:
    client, bucket = store.client, store.settings.bucket
    first = client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        client.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert exists.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch='"0123"')
    assert stale.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    client.put_object(Bucket=bucket, Key="k", Body=b"4", IfMatch=first["ETag"])
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"4"


async def test_round_trip_through_s3(store: S3Store, tmp_path: Path) -> None:
    state = make_state(tmp_path / "state")
    writer = manager(store, state)
    assert (await writer.restore()).empty
    first = await writer.snapshot("first")
    put_row(state, "b", "2")
    second = await writer.snapshot("second")
    assert first and second and await writer.snapshot("same") is None
    restored = tmp_path / "restored"
    result = await manager(store, restored).restore()
    assert result.snapshot == second
    assert db_rows(restored) == [("a", "1"), ("b", "2")]
    assert [s.id for s in await writer.list()] == [second.id, first.id]


async def test_a_kept_generation_survives_pruning_on_s3(store: S3Store, tmp_path: Path) -> None:
    await check_kept_generation_survives_pruning(store, tmp_path)


async def test_two_writers_race_on_s3(store: S3Store, tmp_path: Path) -> None:
    state = make_state(tmp_path / "state")
    a = manager(store, state)
    await a.restore()
    await a.snapshot("base")
    other = tmp_path / "other"
    b = manager(store, other)
    await b.restore()
    put_row(state, "w", "a")
    put_row(other, "w", "b")
    results = await asyncio.gather(a.snapshot("a"), b.snapshot("b"), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], HeadConflict)
    head = await read_head_manifest(store)
    assert winners[0] is not None and head.id == winners[0].id
    check = tmp_path / "check"
    await manager(store, check).restore()
    assert ("w", head.reason) in db_rows(check)


class FailPutsAfter:
    """Let `allowed` PutObject requests through, then fail every attempt with `error`."""

    def __init__(self, allowed: int, error: Exception) -> None:
        self.allowed = allowed
        self.error = error
        self.seen = 0

    def __call__(self, **_: Any) -> None:
        self.seen += 1
        if self.seen > self.allowed:
            raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="http://store"),
        ConnectionResetError("connection reset by peer"),
    ],
    ids=["timeout", "reset"],
)
async def test_store_failure_mid_upload_never_moves_head(
    bucket_env: dict[str, str], tmp_path: Path, error: Exception
) -> None:
    state = make_state(tmp_path / "state")
    good = open_store(bucket_env)
    writer = manager(good, state)
    await writer.restore()
    base = await writer.snapshot("base")
    head_before = await good.get("snapshots/HEAD")

    faulty = open_store(bucket_env)
    assert isinstance(faulty, S3Store)
    fault = FailPutsAfter(allowed=2, error=error)
    faulty.client.meta.events.register("before-send.s3.PutObject", fault)
    flaky_writer = manager(faulty, state)
    await flaky_writer.restore()
    (state / "big.bin").write_bytes(os.urandom(13 * 1024 * 1024))  # thirteen chunks to upload
    with pytest.raises(StoreUnavailable, match="cannot write"):
        await flaky_writer.snapshot("interrupted")
    assert fault.seen > 2  # the failure really hit mid-upload, after some blobs went through
    assert await good.get("snapshots/HEAD") == head_before
    restored = tmp_path / "restored"
    assert (await manager(good, restored).restore()).snapshot == base

    # The same manager recovers once the store does: HEAD was never moved, so no conflict.
    faulty.client.meta.events.unregister("before-send.s3.PutObject", fault)
    retried = await flaky_writer.snapshot("retried")
    assert retried is not None
    again = tmp_path / "again"
    await manager(good, again).restore()
    assert (again / "big.bin").read_bytes() == (state / "big.bin").read_bytes()


async def test_server_errors_surface_as_store_unavailable(store: S3Store, tmp_path: Path) -> None:
    from botocore.awsrequest import AWSResponse

    class Body:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield b"<Error><Code>InternalError</Code></Error>"

    calls: list[int] = []

    def hook(**_: Any) -> AWSResponse:
        calls.append(1)
        return AWSResponse("http://store", 500, {}, Body())  # type: ignore[arg-type]

    store.client.meta.events.register("before-send.s3.GetObject", hook)
    with pytest.raises(StoreUnavailable, match="InternalError"):
        await manager(store, tmp_path / "state").restore()
    assert len(calls) == store.settings.max_attempts  # bounded retries, then a clear error
    assert not (tmp_path / "state").exists()


def silent_server() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers (a hung store)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


async def test_hung_store_times_out_as_store_unavailable(tmp_path: Path) -> None:
    server, port = silent_server()
    try:
        store = S3Store(
            S3Settings(
                endpoint=f"http://127.0.0.1:{port}",
                bucket="molt-data",
                access_key_id="id",
                secret_access_key="secret",
                read_timeout_s=0.5,
                max_attempts=2,
            )
        )
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="ReadTimeout"):
            await manager(store, tmp_path / "state").restore()
        # Not a speed target: proves the configured read timeout is applied (botocore's
        # default of 60 s per attempt would run past this test's timeout).
        assert time.monotonic() - started < 30
    finally:
        server.close()


async def test_unreachable_store_raises_and_keeps_local_state(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    env = r2_env(f"http://127.0.0.1:{port}", "molt-data")
    state = make_state(tmp_path / "state")
    before = db_rows(state)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        await manager(open_store(env), state).restore()
    assert db_rows(state) == before


async def test_missing_bucket_is_named(moto_endpoint: str, tmp_path: Path) -> None:
    store = open_store(r2_env(moto_endpoint, "no-such-bucket"))
    with pytest.raises(StoreUnavailable, match="does not exist; check R2_BUCKET"):
        await manager(store, tmp_path / "state").restore()


async def test_idle_watch_makes_no_s3_requests(store: S3Store, tmp_path: Path) -> None:
    state = make_state(tmp_path / "state")
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("base")
    requests: list[str] = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **_: requests.append(request.method)
    )
    async with writer.watch(debounce_s=0.2, poll_s=0.1, max_delay_s=0.5):
        await asyncio.sleep(2.0)
    assert requests == []
    put_row(state, "wake", "1")
    async with writer.watch(debounce_s=0.2, poll_s=0.1, max_delay_s=0.5):
        for _ in range(300):
            await asyncio.sleep(0.1)
            if "PUT" in requests:  # the same hook does see traffic once something changed
                break
        else:
            pytest.fail("no snapshot within 30 s of a change")


async def test_kill_9_during_snapshots_loses_nothing_acknowledged(
    bucket_env: dict[str, str], tmp_path: Path
) -> None:
    await kill_rounds(bucket_env, tmp_path)


async def test_head_write_whose_answer_was_lost_is_not_a_conflict(
    store: S3Store, tmp_path: Path
) -> None:
    import urllib3

    state = make_state(tmp_path / "state")
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("base")
    delivered: list[str] = []

    def deliver_then_time_out(request: Any, **_: Any) -> None:
        # The store applies the HEAD swap, but the answer never reaches the client; botocore
        # retries the same conditional PUT, which now fails its own precondition (412).
        if request.url.endswith("/snapshots/HEAD") and not delivered:
            body = request.body if isinstance(request.body, bytes) else request.body.read()
            answer = urllib3.PoolManager().request(
                request.method, request.url, body=body, headers=dict(request.headers)
            )
            delivered.append(str(answer.status))
            raise ReadTimeoutError(endpoint_url=request.url)

    store.client.meta.events.register("before-send.s3.PutObject", deliver_then_time_out)
    put_row(state, "b", "2")
    second = await writer.snapshot("second")
    assert delivered == ["200"]
    assert second is not None and (await read_head_manifest(store)).id == second.id
    put_row(state, "c", "3")
    assert await writer.snapshot("third") is not None  # the etag it kept is the real one


async def test_oversized_s3_object_is_refused_unread(
    store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox_runtime.snapshots.store as store_module

    state = make_state(tmp_path / "state")
    writer = manager(store, state)
    await writer.restore()
    first = await writer.snapshot("small")
    (state / "big.bin").write_bytes(os.urandom(200_000))
    assert await writer.snapshot("big") is not None
    monkeypatch.setattr(store_module, "MAX_OBJECT_BYTES", 100_000)
    result = await manager(store, tmp_path / "restored").restore()
    assert result.snapshot == first
    assert "larger than any snapshot object" in result.refused[0].reason
