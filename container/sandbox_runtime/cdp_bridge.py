"""A local Chrome DevTools endpoint on 127.0.0.1 backed by a remote browser.

OpenClaw's browser tool (and Playwright's `connect_over_cdp`) expects a local Chromium: HTTP
discovery under `/json/*` and DevTools WebSockets under `/devtools/*`. This bridge answers the
discovery itself and forwards WebSocket frames to `MOLT_CDP_UPSTREAM` (the Worker's `/cdp`, a
Browser Rendering session), authenticating with `Authorization: Bearer <MOLT_CDP_SECRET>` in a
header. Nothing it answers contains the upstream URL or the secret.

Browser-level sockets are a frame-for-frame passthrough. A page-level socket
(`/devtools/page/<targetId>`) is served over the upstream browser socket with CDP's flat session
mode: the bridge attaches to the target once and then tags the client's commands with that
session id, so clients that talk to a page endpoint directly work as against Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import uuid
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("cdp")

MAX_FRAME_BYTES = 64 * 1024 * 1024  # full-page screenshots are large base64 frames
CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
_TARGET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_INTERNAL_IDS = itertools.count(1_900_000_000)


class UpstreamError(Exception):
    pass


class CdpBridge:
    def __init__(self, upstream: str | None, secret: str | None, port: int) -> None:
        self.upstream = upstream
        self.secret = secret
        self.port = port
        self.browser_id = str(uuid.uuid4())
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                # Playwright's connectOverCDP asks for `/json/version/`; Chromium serves both forms.
                web.get("/json/version", self.version),
                web.get("/json/version/", self.version),
                web.get("/json/list", self.list_targets),
                web.get("/json/list/", self.list_targets),
                web.get("/json", self.list_targets),
                web.get("/json/", self.list_targets),
                web.route("*", "/json/new", self.new_target),
                web.get("/json/close/{target_id}", self.close_target),
                web.get("/devtools/browser/{browser_id}", self.browser_socket),
                web.get("/devtools/page/{target_id}", self.page_socket),
            ]
        )
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _ws_base(self, request: web.Request) -> str:
        # Always loopback with the bridge's own port: never the upstream, whatever Host says.
        return f"ws://127.0.0.1:{self.port}"

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "Browser": "Cloudflare Browser Rendering (via the sandbox CDP bridge)",
                "Protocol-Version": "1.3",
                "User-Agent": "",
                "webSocketDebuggerUrl": (
                    f"{self._ws_base(request)}/devtools/browser/{self.browser_id}"
                ),
            }
        )

    async def list_targets(self, request: web.Request) -> web.Response:
        try:
            result = await self._call("Target.getTargets", {})
        except UpstreamError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        infos = result.get("targetInfos") if isinstance(result, dict) else None
        pages = []
        for info in infos if isinstance(infos, list) else []:
            if not isinstance(info, dict) or info.get("type") != "page":
                continue
            target_id = info.get("targetId")
            if not isinstance(target_id, str) or not _TARGET_ID_RE.match(target_id):
                continue
            pages.append(self._page_entry(request, target_id, info))
        return web.json_response(pages)

    def _page_entry(self, request: web.Request, target_id: str, info: dict[str, Any]) -> dict:
        return {
            "id": target_id,
            "type": "page",
            "title": info.get("title") if isinstance(info.get("title"), str) else "",
            "url": info.get("url") if isinstance(info.get("url"), str) else "",
            "webSocketDebuggerUrl": f"{self._ws_base(request)}/devtools/page/{target_id}",
        }

    async def new_target(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "PUT"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT"])
        url = request.query_string or "about:blank"
        try:
            created = await self._call("Target.createTarget", {"url": url})
        except UpstreamError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        target_id = created.get("targetId") if isinstance(created, dict) else None
        if not isinstance(target_id, str) or not _TARGET_ID_RE.match(target_id):
            return web.json_response({"error": "upstream returned no target id"}, status=502)
        return web.json_response(self._page_entry(request, target_id, {"url": url}))

    async def close_target(self, request: web.Request) -> web.Response:
        target_id = request.match_info["target_id"]
        if not _TARGET_ID_RE.match(target_id):
            return web.json_response({"error": "invalid target id"}, status=400)
        try:
            await self._call("Target.closeTarget", {"targetId": target_id})
        except UpstreamError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        return web.Response(text="Target is closing")

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        if not self.upstream:
            raise UpstreamError("no browser is configured (MOLT_CDP_UPSTREAM is not set)")
        headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        try:
            return await self._http().ws_connect(
                self.upstream,
                headers=headers,
                max_msg_size=MAX_FRAME_BYTES,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise UpstreamError(
                f"the browser upstream refused the connection ({exc.status})"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamError(
                f"the browser upstream is unreachable ({type(exc).__name__})"
            ) from None

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        """One CDP command on a short-lived upstream connection."""
        upstream = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
        try:
            call_id = next(_INTERNAL_IDS)
            await upstream.send_json({"id": call_id, "method": method, "params": params})
            return await asyncio.wait_for(_await_result(upstream, call_id), CALL_TIMEOUT_S)
        except TimeoutError:
            raise UpstreamError(f"the browser did not answer {method} in time") from None
        finally:
            await upstream.close()

    async def browser_socket(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["browser_id"] != self.browser_id:
            return web.json_response(
                {"error": "unknown browser id; read /json/version"}, status=404
            )
        try:
            upstream = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
        except (UpstreamError, TimeoutError) as exc:
            log.warning("browser socket refused: %s", exc)
            return web.json_response({"error": str(exc) or "upstream timeout"}, status=502)
        client = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True)
        await client.prepare(request)
        log.info("browser session opened")
        try:
            await _pipe(client, upstream)
        finally:
            await upstream.close()
            await client.close()
            log.info("browser session closed")
        return client

    async def page_socket(self, request: web.Request) -> web.StreamResponse:
        target_id = request.match_info["target_id"]
        if not _TARGET_ID_RE.match(target_id):
            return web.json_response({"error": "invalid target id"}, status=400)
        try:
            upstream = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
        except (UpstreamError, TimeoutError) as exc:
            return web.json_response({"error": str(exc) or "upstream timeout"}, status=502)
        try:
            call_id = next(_INTERNAL_IDS)
            await upstream.send_json(
                {
                    "id": call_id,
                    "method": "Target.attachToTarget",
                    "params": {"targetId": target_id, "flatten": True},
                }
            )
            attached = await asyncio.wait_for(_await_result(upstream, call_id), CALL_TIMEOUT_S)
        except (UpstreamError, TimeoutError) as exc:
            await upstream.close()
            return web.json_response({"error": f"cannot attach to the page: {exc}"}, status=502)
        session_id = attached.get("sessionId") if isinstance(attached, dict) else None
        if not isinstance(session_id, str):
            await upstream.close()
            return web.json_response({"error": "upstream returned no session"}, status=502)
        client = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True)
        await client.prepare(request)
        try:
            await _pipe_session(client, upstream, session_id)
        finally:
            await upstream.close()
            await client.close()
        return client


async def _await_result(ws: aiohttp.ClientWebSocketResponse, call_id: int) -> Any:
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = _json_object(msg.data)
        if data is None or data.get("id") != call_id:
            continue
        if "error" in data:
            error = data["error"]
            text = error.get("message") if isinstance(error, dict) else None
            raise UpstreamError(f"the browser refused: {text or 'error'}")
        return data.get("result", {})
    raise UpstreamError("the browser upstream closed the connection")


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _pipe(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def down() -> None:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            else:
                break

    async def up() -> None:
        async for msg in client:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await upstream.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            else:
                break

    await _first_done(down(), up())


async def _pipe_session(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, session_id: str
) -> None:
    async def down() -> None:
        async for msg in upstream:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = _json_object(msg.data)
            if data is None:
                continue
            if data.get("sessionId") == session_id:
                del data["sessionId"]
                await client.send_str(json.dumps(data))
            elif (
                data.get("method") == "Target.detachedFromTarget"
                and isinstance(data.get("params"), dict)
                and data["params"].get("sessionId") == session_id
            ):
                return

    async def up() -> None:
        async for msg in client:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = _json_object(msg.data)
            if data is None or not isinstance(data.get("id"), int) or "method" not in data:
                await client.close(code=1003, message=b"expected a CDP command object")
                return
            data["sessionId"] = session_id
            await upstream.send_str(json.dumps(data))

    await _first_done(down(), up())


async def _first_done(*coros: Any) -> None:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
