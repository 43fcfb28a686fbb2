"""What the two end-to-end modules share (test_local_stack.py: the local backend;
test_production_path.py: the Sandbox Durable Object on the real image): a page for the agent's
browser to open, the `/cdp` handshake, waiting on a condition rather than a clock, and the
local stack run the way every local module runs it."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp

from devstack import LocalStack, LocalStackConfig

T = TypeVar("T")


@contextlib.contextmanager
def served_page(body: bytes, path: str = "/") -> Iterator[str]:
    """An HTML page on 127.0.0.1 (where the host's Chromium runs); yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()


async def _ws_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def in_own_loop(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run `coro` from a sync test: Playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout)


def cdp_handshake(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of a WebSocket handshake with `url` (101 when upgraded)."""
    return in_own_loop(_ws_status(url, headers))


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll until `check` returns something truthy and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(interval)
    return found


@contextlib.contextmanager
def running_local_stack(config: LocalStackConfig) -> Iterator[LocalStack]:
    """A started LocalStack whose Worker is revived in the background; stopped afterwards."""
    running = LocalStack(config)
    running.start()
    running.watch_worker()
    try:
        yield running
    finally:
        running.stop()
        if running.worker_revivals:
            # Visible in the summary: wrangler dev's own crash (workers-sdk#15451), worked around.
            warnings.warn(
                f"wrangler dev exited and was started again {running.worker_revivals} time(s); "
                f"see {running.worker.log_path if running.worker else 'the Worker log'}",
                stacklevel=1,
            )
