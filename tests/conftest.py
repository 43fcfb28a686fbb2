"""Fixtures shared by every test package."""

from __future__ import annotations

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
