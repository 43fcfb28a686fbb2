"""Control API wiring with a recording stand-in for the OpenClaw CLI.

The real-gateway tests prove the endpoints work end to end; these prove what never happens: a bad
id never starts a process, and errors from OpenClaw never echo a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from runtime_harness import mint, secret
from sandbox_runtime.auth import TokenVerifier
from sandbox_runtime.control_api import make_app
from sandbox_runtime.devices import Devices
from sandbox_runtime.logs import LogRing, Redactor
from sandbox_runtime.openclaw_cli import CliResult

pytestmark = pytest.mark.timeout(30)

ENV = {"MOLT_CONTROL_SECRET": secret("control-secret-for-tests")}
GATEWAY_TOKEN = secret("gwtok")


@dataclass
class RecordingCli:
    result: CliResult = field(default_factory=lambda: CliResult(0, "{}", ""))
    calls: list[tuple[str, ...]] = field(default_factory=list)

    async def run(self, *args: str, timeout: float = 30.0) -> CliResult:
        self.calls.append(args)
        return self.result


@dataclass
class StubGateway:
    state: str = "ready"
    restarts: int = 0


@dataclass
class StubSupervisor:
    cli: RecordingCli
    gateway: StubGateway = field(default_factory=StubGateway)
    phase: str = "ready"
    snapshots: Any = None
    ring: LogRing = field(default_factory=LogRing)
    redactor: Redactor = field(default_factory=lambda: Redactor([GATEWAY_TOKEN]))

    def __post_init__(self) -> None:
        self.devices = Devices(self.cli)  # type: ignore[arg-type]


async def client_for(sup: StubSupervisor) -> TestClient:
    app = make_app(sup, TokenVerifier(ENV["MOLT_CONTROL_SECRET"]))  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(ENV)}"}


BAD_IDS = ["-rf", "--url=ws://evil", "a;id", "$(id)", "a b", "x" * 129, "..", "a|b", "é", "%00"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_ids_are_refused_before_any_process(bad_id: str) -> None:
    sup = StubSupervisor(RecordingCli())
    client = await client_for(sup)
    try:
        for template in (
            "/v1/devices/pending/{}/approve",
            "/v1/devices/pending/{}/reject",
            "/v1/devices/{}/revoke",
        ):
            path = template.format(bad_id.replace("%", "%25").replace(" ", "%20"))
            response = await client.post(path, headers=auth())
            assert response.status in (400, 404), path
        assert sup.cli.calls == []
    finally:
        await client.close()


async def test_good_ids_reach_the_cli_as_plain_arguments() -> None:
    sup = StubSupervisor(RecordingCli())
    client = await client_for(sup)
    request_id = "0b6a1c7e-2f4d-4e59-9d3a-5c1e2f3a4b5c"
    device_id = "e7a67ecead00b0a6b3e2ff00b87a020b58d5b9bafaf67d083789087e65b9c159"
    try:
        for path in (
            f"/v1/devices/pending/{request_id}/approve",
            f"/v1/devices/pending/{request_id}/reject",
            f"/v1/devices/{device_id}/revoke",
        ):
            assert (await client.post(path, headers=auth())).status == 200
        assert sup.cli.calls == [
            ("devices", "approve", request_id, "--json"),
            ("devices", "reject", request_id, "--json"),
            ("devices", "remove", device_id, "--json"),
        ]
    finally:
        await client.close()


async def test_gateway_down_is_503_but_a_bad_id_is_still_400() -> None:
    sup = StubSupervisor(RecordingCli(), gateway=StubGateway(state="backoff"), phase="degraded")
    client = await client_for(sup)
    try:
        response = await client.post("/v1/devices/pending/ok-id/approve", headers=auth())
        assert response.status == 503
        response = await client.post("/v1/devices/pending/a;b/approve", headers=auth())
        assert response.status == 400
        assert sup.cli.calls == []
    finally:
        await client.close()


async def test_openclaw_errors_are_502_and_redacted() -> None:
    failing = CliResult(1, "", f"gateway said: token {GATEWAY_TOKEN} rejected\n")
    sup = StubSupervisor(RecordingCli(result=failing))
    client = await client_for(sup)
    try:
        response = await client.get("/v1/devices", headers=auth())
        assert response.status == 502
        body = await response.json()
        assert GATEWAY_TOKEN not in body["error"] and "[redacted]" in body["error"]
        unknown = CliResult(1, '{"ok":false,"error":{"message":"unknown requestId"}}', "")
        sup.cli.result = unknown
        response = await client.post("/v1/devices/pending/abc/approve", headers=auth())
        assert response.status == 404
    finally:
        await client.close()


async def test_unknown_routes_and_methods_are_json() -> None:
    client = await client_for(StubSupervisor(RecordingCli()))
    try:
        response = await client.get("/v1/nope", headers=auth())
        assert response.status == 404 and "no such endpoint" in (await response.json())["error"]
        response = await client.delete("/v1/status", headers=auth())
        assert response.status == 405
        # Authentication comes first: an unauthenticated probe learns nothing about routes.
        response = await client.get("/v1/nope")
        assert (response.status, await response.json()) == (401, {"error": "unauthorized"})
    finally:
        await client.close()
