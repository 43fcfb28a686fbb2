"""Device pairing through OpenClaw's own CLI (`openclaw devices ...`).

Ids come from HTTP paths, so they are checked against a strict pattern before any process is
started: letters, digits, `-` and `_`, starting with a letter or digit (so an id can never be read
as a CLI option), at most 128 characters. OpenClaw's request ids are UUIDs and its device ids are
64 hex characters; both fit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .openclaw_cli import CliTimeout, OpenClawCli

# OpenClaw's wording when an id is not (or no longer) known; `approve` says it in prose.
_NOT_FOUND_RE = re.compile(r"unknown (requestId|deviceId)|No pending device request matches")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
CLI_TIMEOUT_S = 30.0


class BadId(Exception):
    pass


class NotFound(Exception):
    pass


class OpenClawFailed(Exception):
    pass


def check_id(value: str, what: str) -> str:
    if not ID_RE.fullmatch(value):
        raise BadId(
            f"{what} must be 1-128 letters, digits, '-' or '_' starting with a letter or digit; "
            "copy it from GET /v1/devices."
        )
    return value


def _iso(ms: Any) -> str | None:
    if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _name(entry: dict[str, Any]) -> str | None:
    for key in ("operatorLabel", "displayName", "clientId"):
        if isinstance(entry.get(key), str) and entry[key]:
            return entry[key]
    return None


def _roles(entry: dict[str, Any]) -> list[str]:
    roles = entry.get("roles")
    if isinstance(roles, list):
        return [r for r in roles if isinstance(r, str)]
    role = entry.get("role")
    return [role] if isinstance(role, str) else []


class Devices:
    def __init__(self, cli: OpenClawCli) -> None:
        self.cli = cli

    async def list(self) -> dict[str, list[dict[str, Any]]]:
        data = await self._call("list")
        if not isinstance(data, dict):
            raise OpenClawFailed("openclaw devices list returned something that is not an object")
        pending = [p for p in data.get("pending") or [] if isinstance(p, dict)]
        paired = [p for p in data.get("paired") or [] if isinstance(p, dict)]
        return {
            "pending": [
                {
                    "request_id": _str(p.get("requestId")),
                    "device_id": _str(p.get("deviceId")),
                    "name": _name(p),
                    "platform": _str(p.get("platform")),
                    "roles": _roles(p),
                    # As OpenClaw saw it (the forwarded client address behind a trusted proxy).
                    "remote_ip": _str(p.get("remoteIp")),
                    "created_at": _iso(p.get("ts")),
                }
                for p in pending
            ],
            "paired": [
                {
                    "device_id": _str(p.get("deviceId")),
                    "name": _name(p),
                    "platform": _str(p.get("platform")),
                    "roles": _roles(p),
                    "created_at": _iso(p.get("createdAtMs")),
                }
                for p in paired
            ],
        }

    async def approve(self, request_id: str) -> Any:
        return await self._call("approve", check_id(request_id, "request id"))

    async def reject(self, request_id: str) -> Any:
        return await self._call("reject", check_id(request_id, "request id"))

    async def revoke(self, device_id: str) -> Any:
        # Removing the paired entry invalidates every token of the device, for every role; the
        # device has to pair again to come back.
        return await self._call("remove", check_id(device_id, "device id"))

    async def _call(self, *args: str) -> Any:
        try:
            result = await self.cli.run("devices", *args, "--json", timeout=CLI_TIMEOUT_S)
        except CliTimeout as exc:
            raise OpenClawFailed(f"{exc}; check that the gateway is running.") from None
        if result.returncode != 0:
            message = result.error_message()
            if _NOT_FOUND_RE.search(result.stdout + result.stderr):
                raise NotFound(
                    f"OpenClaw does not know that {'device' if args[0] == 'remove' else 'request'} "
                    "id; list the devices again and use a current id."
                )
            raise OpenClawFailed(f"openclaw devices {args[0]} failed: {message}")
        try:
            return result.json()
        except ValueError:
            raise OpenClawFailed(f"openclaw devices {args[0]} printed no JSON") from None
