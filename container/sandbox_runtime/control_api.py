"""The control API the Worker calls (docs/interfaces.md, "Control API").

Every route except `/healthz` needs a valid control JWT; any failure of authentication is the
same bare 401 so a caller learns nothing about why. Errors otherwise are one sentence naming the
problem and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import TokenVerifier, Unauthorized
from .devices import BadId, NotFound, OpenClawFailed, check_id

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger("control")
audit = logging.getLogger("control.audit")

MAX_LOG_LINES = 1000
SUPERVISOR_KEY: web.AppKey[Supervisor] = web.AppKey("supervisor")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_app(supervisor: Supervisor, verifier: TokenVerifier) -> web.Application:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz" and request.method == "GET":
            return await handler(request)
        try:
            caller = verifier.verify_header(request.headers.get("Authorization"))
        except Unauthorized as exc:
            log.warning("refused %s %s: %s", request.method, request.path, exc)
            return web.json_response({"error": "unauthorized"}, status=401)
        audit.info("%s %s by %s", request.method, request.path, caller.subject)
        return await handler(request)

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404:
                return error(404, f"no such endpoint: {request.method} {request.path}.")
            if exc.status == 405:
                return error(405, f"{request.method} is not allowed on {request.path}.")
            raise

    app = web.Application(middlewares=[json_errors, authenticate], client_max_size=64 * 1024)
    app[SUPERVISOR_KEY] = supervisor
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/v1/status", status),
            web.post("/v1/snapshots", snapshot_now),
            web.get("/v1/snapshots", list_snapshots),
            web.post("/v1/gateway/restart", restart_gateway),
            web.get("/v1/devices", list_devices),
            web.post("/v1/devices/pending/{request_id}/approve", approve_device),
            web.post("/v1/devices/pending/{request_id}/reject", reject_device),
            web.post("/v1/devices/{device_id}/revoke", revoke_device),
            web.get("/v1/logs", logs),
        ]
    )
    return app


def _sup(request: web.Request) -> Supervisor:
    return request.app[SUPERVISOR_KEY]


async def healthz(request: web.Request) -> web.Response:
    sup = _sup(request)
    ok = sup.phase in ("ready", "degraded")
    return web.json_response({"ok": ok, "phase": sup.phase}, status=200 if ok else 503)


async def status(request: web.Request) -> web.Response:
    return web.json_response(_sup(request).status())


async def snapshot_now(request: web.Request) -> web.Response:
    sup = _sup(request)
    if sup.snapshots is None or sup.phase in ("restoring", "stopping"):
        return error(503, f"snapshots are not available while {sup.phase}; retry shortly.")
    if sup.snapshot_busy():
        return error(409, "a snapshot is already being taken; retry when it has finished.")
    try:
        info, changed = await sup.take_snapshot("api")
    except Exception as exc:
        log.error("snapshot failed: %s", exc)
        return error(502, f"the snapshot failed: {sup.redactor(str(exc))}")
    return web.json_response(
        {
            "id": getattr(info, "id", None),
            "created_at": _when(getattr(info, "created_at", None)),
            "changed": changed,
        }
    )


async def list_snapshots(request: web.Request) -> web.Response:
    sup = _sup(request)
    if sup.snapshots is None:
        return error(503, f"snapshots are not available while {sup.phase}; retry shortly.")
    try:
        infos = await sup.snapshots.list()
    except Exception as exc:
        log.error("listing snapshots failed: %s", exc)
        return error(502, f"listing snapshots failed: {sup.redactor(str(exc))}")
    return web.json_response(
        {
            "head": getattr(infos[0], "id", None) if infos else None,
            "snapshots": [snapshot_json(info) for info in infos],
        }
    )


def snapshot_json(info: Any) -> dict[str, Any]:
    return {
        "id": getattr(info, "id", None),
        "created_at": _when(getattr(info, "created_at", None)),
        "size": getattr(info, "size", None),
        "files": getattr(info, "files", None),
    }


def _when(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value if isinstance(value, str) else None


async def restart_gateway(request: web.Request) -> web.Response:
    sup = _sup(request)
    if sup.phase not in ("ready", "degraded", "starting"):
        return error(409, f"the gateway cannot be restarted while {sup.phase}; retry shortly.")
    await sup.gateway.restart()
    return web.json_response({"restarted": True})


async def list_devices(request: web.Request) -> web.Response:
    return await _devices_call(request, lambda sup: sup.devices.list())


async def approve_device(request: web.Request) -> web.Response:
    rid = request.match_info["request_id"]
    return await _devices_call(
        request, lambda sup: sup.devices.approve(rid), "approved", (rid, "request id")
    )


async def reject_device(request: web.Request) -> web.Response:
    rid = request.match_info["request_id"]
    return await _devices_call(
        request, lambda sup: sup.devices.reject(rid), "rejected", (rid, "request id")
    )


async def revoke_device(request: web.Request) -> web.Response:
    did = request.match_info["device_id"]
    return await _devices_call(
        request, lambda sup: sup.devices.revoke(did), "revoked", (did, "device id")
    )


async def _devices_call(
    request: web.Request,
    call: Callable[[Supervisor], Awaitable[Any]],
    wrap: str | None = None,
    ident: tuple[str, str] | None = None,
) -> web.Response:
    sup = _sup(request)
    try:
        # A bad id is refused before anything else, so it never reaches the CLI (the Devices
        # methods check again; this is the early, gateway-independent answer).
        if ident is not None:
            check_id(*ident)
        if sup.gateway.state not in ("ready", "unhealthy"):
            return error(503, "the gateway is not running yet; retry when /healthz is ok.")
        result = await call(sup)
    except BadId as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, sup.redactor(str(exc)))
    except OpenClawFailed as exc:
        log.error("%s", exc)
        return error(502, sup.redactor(str(exc)))
    return web.json_response({wrap: result} if wrap else result)


async def logs(request: web.Request) -> web.Response:
    raw = request.query.get("lines", "200")
    try:
        count = int(raw)
    except ValueError:
        return error(400, f"lines={raw!r} is not a whole number; use 1 to {MAX_LOG_LINES}.")
    if not 1 <= count <= MAX_LOG_LINES:
        return error(400, f"lines must be between 1 and {MAX_LOG_LINES}.")
    return web.json_response({"lines": _sup(request).ring.tail(count)})
