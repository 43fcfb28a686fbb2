"""A local stand-in for a deployed Worker with Access in front of its admin paths.

It answers the way the edge does: `/healthz` is public, admin paths without Access credentials
get a redirect to the team's login (or 401/403, depending on `refusal`), a valid service token
passes through to the runtime's status, and `/cdp` checks its bearer secret first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEAM = "example-team.cloudflareaccess.com"


@dataclass
class Behaviour:
    client_id: str = "0123abcd.access"
    client_secret: str = "svc-secret-7f1e0c2b9a8d4e6f"
    cdp_secret: str = "cdp-secret-5a4b3c2d1e0f"
    refusal: str = "redirect"  # redirect | 401 | 403 | public | wrong-redirect
    cdp_open: bool = False
    phases: list[str] = field(default_factory=lambda: ["ready"])  # one per status call, last sticks
    booting_calls: int = 0  # status calls answered 503 {error, phase} first, like the Worker
    gateway_state: str = "ready"
    snapshot_age_s: float | None = 42.0
    snapshot_pending: bool = False
    # The runtime's security block: one per status call, the last sticks (like phases).
    audits: list[dict[str, Any] | None] = field(default_factory=lambda: [audit()])
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        phase = self.phases.pop(0) if len(self.phases) > 1 else self.phases[0]
        security = self.audits.pop(0) if len(self.audits) > 1 else self.audits[0]
        return {
            "phase": phase,
            "gateway": {"state": self.gateway_state if phase == "ready" else "starting", "pid": 7},
            "snapshot": {
                "last_id": None if self.snapshot_age_s is None else "00000003-1-abc",
                "age_s": self.snapshot_age_s,
                "pending": self.snapshot_pending,
            },
            "version": "2026.9.6",
            **({"security": security} if security is not None else {}),
        }


def audit(state: str = "done", *severities: str) -> dict[str, Any]:
    """A `security` block as the runtime reports it, one finding per severity given."""
    findings = [
        {
            "id": f"example.{severity}_{index}",
            "severity": severity,
            "title": f"A {severity} finding",
            "detail": "What OpenClaw saw.",
            "fix": f"How to fix {index}.",
        }
        for index, severity in enumerate(severities or ("warn", "info"))
    ]
    return {
        "state": state,
        "checked_at": "2026-12-01T00:00:00Z",
        "findings": findings,
        "counts": {
            s: sum(f["severity"] == s for f in findings) for s in ("critical", "warn", "info")
        },
    }


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            behaviour.seen.append((self.path, dict(self.headers.items())))
            path = self.path
            if path == "/healthz":
                return self._send(200, {"ok": True})
            if path == "/cdp":
                expected = f"Bearer {behaviour.cdp_secret}"
                if behaviour.cdp_open or self.headers.get("Authorization") == expected:
                    return self._send(426, {"error": "upgrade required"})
                return self._send(401, {"error": "unauthorized"})
            if path.startswith(("/_admin", "/api/admin", "/debug")):
                token_ok = (
                    self.headers.get("CF-Access-Client-Id") == behaviour.client_id
                    and self.headers.get("CF-Access-Client-Secret") == behaviour.client_secret
                )
                if token_ok or behaviour.refusal == "public":
                    if path == "/api/admin/status":
                        if behaviour.booting_calls > 0:
                            behaviour.booting_calls -= 1
                            return self._send(503, {"error": "booting", "phase": "restoring"})
                        return self._send(200, behaviour.status())
                    return self._send(200, {"page": "admin"})
                if behaviour.refusal in ("401", "403"):
                    return self._send(int(behaviour.refusal), {"error": "forbidden"})
                host = TEAM if behaviour.refusal == "redirect" else "evil.example.com"
                return self._send(
                    302,
                    None,
                    {"Location": f"https://{host}/cdn-cgi/access/login/x?redirect_url={path}"},
                )
            return self._send(404, {"error": "not found"})

    return Handler


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
