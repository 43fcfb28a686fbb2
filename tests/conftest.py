"""Fixtures shared by every test package."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) on an ephemeral port, one per test session.

    moto 5.2.5 enforces `IfNoneMatch` and `IfMatch` on put_object (412), which the snapshot
    store's conditional writes depend on; tests/runtime/test_snapshots_s3.py keeps checking that.
    Tests share the server, so each one makes its own bucket.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def current_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Pulumi makes Outputs on the thread's current event loop (`pulumi.Config.require_secret`
    does, outside a program too). pytest-asyncio leaves none set after an async test, so a sync
    test that reads settings after one would fail by file order alone; give it a loop of its own.
    Async tests get theirs from pytest-asyncio.
    """
    if request.node.get_closest_marker("asyncio") is not None:
        yield
        return
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            yield
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return
    yield
