"""Local stack benchmarks: what the Worker proxy adds, and how long a cold start takes.

    .cache/venv/bin/python scripts/bench_e2e.py [--requests 400] [--messages 300]

Starts one stack exactly as `make dev` does (devstack; fresh credentials and state in a temp
dir, the Worker frozen from a copy of worker/), with a model stand-in from tests/e2e, then prints:

* cold start: launcher start -> every service ready -> first chat reply (through the Worker);
* HTTP round trip (GET /readyz of the gateway) direct vs through the Worker, p50/p99;
* WebSocket message round trip (a gateway `health` request on an open socket) direct vs through
  the Worker, p50/p99.

Direct and proxied samples are interleaved one by one, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from model_standin import (  # noqa: E402  # pyright: ignore[reportMissingImports] - on sys.path above
    API_KEY,
    REPLY_PREFIX,
    ModelStandIn,
)

from devstack import LocalStack, LocalStackConfig  # noqa: E402
from devstack.secrets import fresh_secrets  # noqa: E402

CONNECT_TIMEOUT_S = 60.0


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:7.3f} ms"


class GatewaySocket:
    """An operator connection speaking the gateway's protocol (token auth, no device)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session = session
        self.url = url
        self.token = token
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=16 * 1024 * 1024)
        challenge = await self._next(lambda f: f.get("event") == "connect.challenge")
        assert challenge
        hello = await self.request(
            "connect",
            {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {
                    "id": "gateway-client",
                    "version": "0.1.0",
                    "platform": "linux",
                    "mode": "backend",
                    "displayName": "bench_e2e",
                },
                "role": "operator",
                "scopes": ["operator.read", "operator.write"],
                "caps": [],
                "auth": {"token": self.token},
            },
        )
        if not hello.get("ok"):
            raise RuntimeError(f"the gateway refused the connection: {hello.get('error')}")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        request_id = str(uuid.uuid4())
        await self.ws.send_json(
            {"type": "req", "id": request_id, "method": method, "params": params}
        )
        return await self._next(lambda f: f.get("type") == "res" and f.get("id") == request_id)

    async def _next(self, wanted: Any) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            frame = await self.ws.receive_json(timeout=CONNECT_TIMEOUT_S)
            if wanted(frame):
                return frame

    async def chat(self, text: str, expect: str, timeout: float = 120.0) -> None:
        """Send a chat message and wait for the assistant's final reply containing `expect`."""
        assert self.ws is not None
        answer = await self.request(
            "chat.send",
            {
                "sessionKey": "agent:main:main",
                "message": text,
                "deliver": False,
                "idempotencyKey": str(uuid.uuid4()),
            },
        )
        if not answer.get("ok"):
            raise RuntimeError(f"chat.send failed: {answer.get('error')}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = await self.ws.receive_json(timeout=timeout)
            if frame.get("type") == "event" and expect in str(frame.get("payload")):
                return
        raise TimeoutError(f"no reply containing {expect!r} within {timeout:.0f}s")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def http_round_trips(stack: LocalStack, count: int) -> tuple[list[float], list[float]]:
    direct, proxied = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm both paths (connections, workerd's module cache)
            for base in (stack.gateway_url, stack.url):
                async with session.get(f"{base}/readyz") as response:
                    await response.read()
        for _ in range(count):
            for base, samples in ((stack.gateway_url, direct), (stack.url, proxied)):
                started = time.perf_counter()
                async with session.get(f"{base}/readyz") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{base}/readyz answered {response.status}")
                samples.append(time.perf_counter() - started)
    return direct, proxied


async def attribution(stack: LocalStack, count: int) -> dict[str, list[float]]:
    """Where the Worker's HTTP time goes: the Worker answering alone, and the runtime's health
    probe the local backend makes before forwarding each gateway request."""
    samples: dict[str, list[float]] = {"worker_alone": [], "runtime_health": []}
    urls = {
        "worker_alone": f"{stack.url}/healthz",
        "runtime_health": f"{stack.control_url}/healthz",
    }
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            for name, url in urls.items():
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                samples[name].append(time.perf_counter() - started)
    return samples


async def ws_round_trips(stack: LocalStack, count: int) -> tuple[list[float], list[float]]:
    token = stack.secrets["OPENCLAW_GATEWAY_TOKEN"]
    direct, proxied = [], []
    async with aiohttp.ClientSession() as session:
        sockets = [
            (GatewaySocket(session, stack.gateway_url.replace("http", "ws") + "/", token), direct),
            (GatewaySocket(session, stack.url.replace("http", "ws") + "/", token), proxied),
        ]
        for sock, _ in sockets:
            await sock.open()
            for _ in range(10):
                await sock.request("health", {})
        for _ in range(count):
            for sock, samples in sockets:
                started = time.perf_counter()
                answer = await sock.request("health", {})
                samples.append(time.perf_counter() - started)
                if not answer.get("ok"):
                    raise RuntimeError(f"health failed: {answer.get('error')}")
        for sock, _ in sockets:
            await sock.close()
    return direct, proxied


async def first_reply(stack: LocalStack) -> None:
    async with aiohttp.ClientSession() as session:
        sock = GatewaySocket(
            session, stack.url.replace("http", "ws") + "/", stack.secrets["OPENCLAW_GATEWAY_TOKEN"]
        )
        await sock.open()
        await sock.chat("bench MARK-cold", f"{REPLY_PREFIX}MARK-cold")
        await sock.close()


def report(name: str, direct: list[float], proxied: list[float]) -> None:
    d50, d99 = percentile(direct, 50), percentile(direct, 99)
    p50, p99 = percentile(proxied, 50), percentile(proxied, 99)
    print(f"{name} (n={len(direct)} each)")
    print(f"  direct to the gateway   p50 {ms(d50)}   p99 {ms(d99)}")
    print(f"  through the Worker      p50 {ms(p50)}   p99 {ms(p99)}")
    print(
        f"  added by the Worker     p50 {ms(p50 - d50)}   p99 {ms(p99 - d99)}   "
        f"ratio p50 {p50 / d50:5.2f}x  p99 {p99 / d99:5.2f}x"
    )
    print(f"  mean added              {ms(statistics.fmean(proxied) - statistics.fmean(direct))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="HTTP samples per path")
    parser.add_argument("--messages", type=int, default=300, help="WebSocket samples per path")
    args = parser.parse_args()

    standin = ModelStandIn().start()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        stack = LocalStack(
            LocalStackConfig(
                home=Path(tmp),
                secrets=fresh_secrets(),
                freeze_worker=True,
                model_env={
                    "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
                    "MODEL_BASE_URL": standin.base_url,
                    "ANTHROPIC_API_KEY": API_KEY,
                },
            ),
        )
        started = time.monotonic()
        try:
            stack.start()
            ready = time.monotonic() - started
            asyncio.run(first_reply(stack))
            replied = time.monotonic() - started
            print("cold start of the whole local stack (fresh state, no snapshot to restore)")
            print(f"  every service ready     {ready:6.1f} s")
            print(
                f"  first chat reply        {replied:6.1f} s   (through the Worker, model stand-in)"
            )
            print()
            report(
                "HTTP round trip, GET /readyz", *asyncio.run(http_round_trips(stack, args.requests))
            )
            parts = asyncio.run(attribution(stack, args.requests))
            print("  where the added time goes (same run, p50):")
            alone = percentile(parts["worker_alone"], 50)
            probe = percentile(parts["runtime_health"], 50)
            print(f"    the Worker answering alone (its /healthz)     {ms(alone)}")
            print(f"    the runtime /healthz probe per gateway call   {ms(probe)}")
            print()
            report(
                "WebSocket message round trip, gateway `health` request",
                *asyncio.run(ws_round_trips(stack, args.messages)),
            )
        finally:
            stack.stop()
            standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
