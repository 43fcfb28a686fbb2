"""The production Worker path against the local backend: cold start and warm request overhead.

    .cache/venv/bin/python scripts/bench_prod_path.py [--requests 200] [--messages 200]

Starts both stacks in one run, fresh credentials and state in temp dirs, the Worker frozen from
a copy of worker/, no model key (nothing here calls a model):

* the local backend (`make dev`): `wrangler dev` proxying to the runtime on loopback;
* the production path (`make dev CONTAINERS=1`): `wrangler dev` whose `Sandbox` Durable Object
  runs the real image under podman (devstack/containers.py).

Then prints:

* cold start: launcher start -> Worker up; first request -> Control UI served (the container's
  boot through the Durable Object: create, start, restore, gateway); for the local backend,
  launcher start -> Control UI served;
* wake from sleep: the container stopped (SIGTERM, final snapshot), next request -> Control UI
  (restore from the store included);
* warm HTTP round trip (GET /readyz of the gateway) and WebSocket message round trip (a gateway
  `health` request on an open socket): through the local backend's Worker vs through the Durable
  Object, p50/p99, samples interleaved one by one so both see the same machine load; the local
  gateway direct as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench_e2e import GatewaySocket, ms, percentile  # noqa: E402

from devstack import LocalStack, LocalStackConfig  # noqa: E402
from devstack.containers import ContainersConfig, ContainerStack  # noqa: E402
from devstack.secrets import fresh_secrets  # noqa: E402


def control_ui_after(url: str, timeout: float = 300) -> float:
    """Seconds until `url` serves the Control UI (200), polling as the loading page does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        request = urllib.request.Request(url + "/", headers={"Accept": "text/html"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
                if response.status == 200 and b"openclaw" in response.read().lower():
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} served no Control UI within {timeout:.0f}s")


async def http_round_trips(urls: list[str], count: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as session:
        for url in urls:  # warm every path (connections, workerd's module cache) until it serves
            ok, deadline = 0, time.monotonic() + 120
            while ok < 20:
                async with session.get(f"{url}/readyz") as response:
                    await response.read()
                    ok = ok + 1 if response.status == 200 else 0
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url}/readyz does not answer 200")
        for _ in range(count):
            for url, bucket in zip(urls, samples, strict=True):
                started = time.perf_counter()
                async with session.get(f"{url}/readyz") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}/readyz answered {response.status}")
                bucket.append(time.perf_counter() - started)
    return samples


async def ws_round_trips(urls: list[str], token: list[str], count: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as session:
        sockets = [
            GatewaySocket(session, url.replace("http", "ws") + "/", t)
            for url, t in zip(urls, token, strict=True)
        ]
        for sock in sockets:
            await sock.open()
            for _ in range(10):
                await sock.request("health", {})
        for _ in range(count):
            for sock, bucket in zip(sockets, samples, strict=True):
                started = time.perf_counter()
                answer = await sock.request("health", {})
                bucket.append(time.perf_counter() - started)
                if not answer.get("ok"):
                    raise RuntimeError(f"health failed: {answer.get('error')}")
        for sock in sockets:
            await sock.close()
    return samples


def report(name: str, labels: list[str], samples: list[list[float]]) -> None:
    print(f"{name} (n={len(samples[0])} each)")
    for label, bucket in zip(labels, samples, strict=True):
        print(f"  {label:<34} p50 {ms(percentile(bucket, 50))}   p99 {ms(percentile(bucket, 99))}")
    local, durable = samples[-2], samples[-1]
    added50 = percentile(durable, 50) - percentile(local, 50)
    added99 = percentile(durable, 99) - percentile(local, 99)
    print(f"  Durable Object vs local backend    p50 {ms(added50)}   p99 {ms(added99)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="HTTP samples per path")
    parser.add_argument("--messages", type=int, default=200, help="WebSocket samples per path")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-prod-local-") as local_home,
        tempfile.TemporaryDirectory(prefix="bench-prod-containers-") as containers_home,
    ):
        local = LocalStack(
            LocalStackConfig(home=Path(local_home), secrets=fresh_secrets(), freeze_worker=True)
        )
        durable = ContainerStack(
            ContainersConfig(
                home=Path(containers_home), secrets=fresh_secrets(), freeze_worker=True
            )
        )
        try:
            started = time.monotonic()
            local.start()
            local.watch_worker()
            local_up = time.monotonic() - started
            local_ui = local_up + control_ui_after(local.url)

            started = time.monotonic()
            durable.start()
            worker_up = time.monotonic() - started
            first_ui = control_ui_after(durable.url)

            name = durable.app_container()
            assert name is not None
            durable.stop_container(name)
            wake_ui = control_ui_after(durable.url)

            print("cold start, image built and cached, no snapshot to restore")
            print(f"  local backend: launcher start -> Control UI         {local_ui:6.1f} s")
            print(f"  production path: launcher start -> Worker up        {worker_up:6.1f} s")
            print(f"  production path: first request -> Control UI        {first_ui:6.1f} s")
            print(f"  production path: wake (stopped, restore) -> UI      {wake_ui:6.1f} s")
            print()
            labels = ["local gateway, direct", "local backend (Worker)", "Durable Object (Worker)"]
            urls = [local.gateway_url, local.url, durable.url]
            report(
                "HTTP round trip, GET /readyz",
                labels,
                asyncio.run(http_round_trips(urls, args.requests)),
            )
            print()
            tokens = [local.secrets["OPENCLAW_GATEWAY_TOKEN"]] * 2 + [
                durable.secrets["OPENCLAW_GATEWAY_TOKEN"]
            ]
            report(
                "WebSocket message round trip, gateway `health` request",
                labels,
                asyncio.run(ws_round_trips(urls, tokens, args.messages)),
            )
        finally:
            durable.stop()
            local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
