"""The CDP bridge against a real headless Chromium (Debian's, installed by the bootstrap)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from runtime_harness import chromium as start_chromium
from runtime_harness import free_port, secret
from sandbox_runtime.cdp_bridge import CdpBridge

pytestmark = pytest.mark.timeout(90)

PAGE = "data:text/html,<title>bridge-test</title><h1 style='font-size:80px'>hello</h1>"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_chromium(tmp_path_factory.mktemp("chromium-profile")) as url:
        yield url


@contextlib.asynccontextmanager
async def serve(app: web.Application, port: int) -> AsyncIterator[None]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def bridge(upstream: str, secret_value: str | None) -> AsyncIterator[str]:
    port = free_port()
    async with serve(CdpBridge(upstream, secret_value, port).app(), port):
        yield f"http://127.0.0.1:{port}"


class Cdp:
    """A minimal CDP client over one WebSocket (flat sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        call_id = next(self.ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_json(message)
        while True:
            data = await self.ws.receive_json(timeout=30)
            if data.get("id") == call_id:
                assert "error" not in data, data
                return data["result"]
            self.events.append(data)

    async def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            data = await self.ws.receive_json(timeout=30)
            if data.get("method") == method:
                return data


async def test_navigation_and_screenshot_through_the_bridge(chromium: str) -> None:
    chromium_port = chromium.split(":")[2].split("/")[0]
    async with bridge(chromium, None) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/json/version") as response:
            version = await response.json()
        # Playwright's connectOverCDP asks with a trailing slash.
        async with http.get(f"{base}/json/version/") as response:
            assert response.status == 200
            assert (await response.json()) == version
        ws_url = version["webSocketDebuggerUrl"]
        assert ws_url.startswith(f"ws://127.0.0.1:{base.rsplit(':', 1)[1]}/devtools/browser/")
        assert chromium_port not in ws_url

        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            cdp = Cdp(ws)
            target = (await cdp.call("Target.createTarget", url="about:blank"))["targetId"]
            session = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))[
                "sessionId"
            ]
            await cdp.call("Page.enable", session)
            await cdp.call("Page.navigate", session, url=PAGE)
            await cdp.wait_event("Page.loadEventFired")
            shot = await cdp.call("Page.captureScreenshot", session, format="png")
            png = base64.b64decode(shot["data"])
            assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000

        # The page is listed, and its page-level socket (served over the browser socket by the
        # bridge) answers commands without the client handling sessions.
        async with http.get(f"{base}/json/list") as response:
            pages = await response.json()
        async with http.get(f"{base}/json") as response:
            assert await response.json() == pages
        page = next(p for p in pages if p["id"] == target)
        assert page["title"] == "bridge-test"
        assert page["webSocketDebuggerUrl"] == f"ws://{base[7:]}/devtools/page/{target}"
        async with http.ws_connect(page["webSocketDebuggerUrl"]) as ws:
            result = await Cdp(ws).call(
                "Runtime.evaluate", expression="document.querySelector('h1').textContent"
            )
            assert result["result"]["value"] == "hello"
            await ws.send_str("not json")
            closed = await ws.receive(timeout=10)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_bad_target_ids_are_refused(chromium: str) -> None:
    async with bridge(chromium, None) as base, aiohttp.ClientSession() as http:
        for path in ("/devtools/page/..%2F..", "/json/close/a;b", "/devtools/browser/other"):
            async with http.get(base + path) as response:
                assert response.status in (400, 404), path


@contextlib.asynccontextmanager
async def guarded_upstream(chromium: str, expected: str) -> AsyncIterator[tuple[str, list]]:
    """A stand-in for the Worker's /cdp: checks the bearer header, then pipes to Chromium."""
    seen: list[tuple[str, str | None]] = []

    async def cdp(request: web.Request) -> web.StreamResponse:
        seen.append((str(request.rel_url), request.headers.get("Authorization")))
        if request.headers.get("Authorization") != f"Bearer {expected}":
            return web.Response(status=401, text="unauthorized")
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        async with aiohttp.ClientSession() as session, session.ws_connect(chromium) as up:

            async def down() -> None:
                async for msg in up:
                    await client.send_str(msg.data)

            task = asyncio.create_task(down())
            async for msg in client:
                await up.send_str(msg.data)
            task.cancel()
        return client

    app = web.Application()
    app.router.add_get("/cdp", cdp)
    port = free_port()
    async with serve(app, port):
        yield f"ws://127.0.0.1:{port}/cdp", seen


async def test_upstream_secret_goes_in_a_header_and_is_required(chromium: str) -> None:
    cdp_secret = secret("cdp")
    async with guarded_upstream(chromium, cdp_secret) as (upstream, seen):
        async with bridge(upstream, cdp_secret) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/json/version") as response:
                body = await response.text()
            assert cdp_secret not in body and upstream not in body
            ws_url = (await (await http.get(f"{base}/json/version")).json())["webSocketDebuggerUrl"]
            async with http.ws_connect(ws_url) as ws:
                version = await Cdp(ws).call("Browser.getVersion")
                assert "Chrome" in version["product"]
        assert seen and seen[-1] == ("/cdp", f"Bearer {cdp_secret}")
        assert all(cdp_secret not in url for url, _ in seen)

        for wrong in (None, secret("wrong")):
            async with bridge(upstream, wrong) as base, aiohttp.ClientSession() as http:
                ws_url = (await (await http.get(f"{base}/json/version")).json())[
                    "webSocketDebuggerUrl"
                ]
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(ws_url)
                assert refused.value.status == 502
                async with http.get(f"{base}/json/list") as response:
                    assert response.status == 502
                    assert "refused the connection (401)" in (await response.json())["error"]


async def test_no_upstream_configured_is_a_clear_error() -> None:
    port = free_port()
    async with (
        serve(CdpBridge(None, None, port).app(), port),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/json/list") as response,
    ):
        assert response.status == 502
        assert "MOLT_CDP_UPSTREAM is not set" in (await response.json())["error"]
