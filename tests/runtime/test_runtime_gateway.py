"""The supervisor with the real OpenClaw gateway: boot, auth, pairing, restarts, shutdown.

One runtime (a `python -m sandbox_runtime` child process) serves the whole module, because a
gateway boot takes ~15 s on this box; the last test stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from runtime_harness import (
    OPENCLAW,
    Runtime,
    base_env,
    chromium,
    cmdline,
    mint,
    process_tree,
    secret,
    secret_values,
)
from sandbox_runtime.snapshots import SnapshotManager, key_from_env, open_store

pytestmark = [pytest.mark.openclaw, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    tmp = tmp_path_factory.mktemp("runtime")
    with chromium(tmp / "chromium-profile") as browser:
        yield from _runtime(tmp, browser)


def _runtime(tmp: Path, browser: str) -> Iterator[Runtime]:
    env = base_env(tmp)
    env.update(
        {
            "MOLT_BIND": "lan",
            # As behind the Worker: a trusted proxy forwards the client's address, so OpenClaw
            # treats the device as remote and holds it for approval (loopback pairs silently).
            "MOLT_TRUSTED_PROXIES": "127.0.0.1/32",
            "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
            "ANTHROPIC_API_KEY": secret("sk-ant"),
            "MODEL_BASE_URL": "http://127.0.0.1:9/anthropic",
            # A local Chromium stands in for the Worker's /cdp (Browser Rendering).
            "MOLT_CDP_UPSTREAM": browser,
        }
    )
    # A copy of the skill as an earlier runtime installed it, restored with the state: it must
    # not shadow the runtime's own.
    stale = Path(env["MOLT_STATE_DIR"]) / "workspace/skills/cloudflare-browser/SKILL.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("---\nname: cloudflare-browser\ndescription: stale copy\n---\n")
    rt = Runtime(env, tmp).start()
    try:
        rt.wait_ready()
        yield rt
    finally:
        rt.stop_all()


async def control(
    rt: Runtime, method: str, path: str, token: str | None = "", **kwargs: Any
) -> tuple[int, Any]:
    headers = {}
    if token == "":
        token = mint(rt.env)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, rt.control + path, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.json(content_type=None)


async def wait_status(rt: Runtime, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, last = await control(rt, "GET", "/v1/status")
        assert status == 200
        if predicate(last):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"status never matched: {last}")


# ------------------------------------------------------------------------- boot and config


async def test_ready_status(runtime: Runtime) -> None:
    status, body = await control(runtime, "GET", "/v1/status")
    assert status == 200
    assert body["phase"] == "ready"
    assert body["gateway"]["state"] == "ready"
    assert isinstance(body["gateway"]["pid"], int)
    assert body["gateway"]["restarts"] == 0
    assert (
        f"openclaw {(Path(__file__).parents[2] / 'container/openclaw.version').read_text().strip()}"
        in body["version"]
    )
    assert set(body["snapshot"]) == {"last_id", "last_at", "age_s", "pending"}
    assert set(body["model"]) == {"primary", "fallbacks", "key"}
    assert isinstance(body["model"]["key"], bool)
    # Read alongside the boot from the store's kept markers: none in a fresh store.
    assert body["upgrade"]["state"] == "none" and body["upgrade"]["kept"] == []
    # The state holds device tokens and transcripts: owner-only whatever the umask.
    assert stat.S_IMODE(Path(runtime.env["MOLT_STATE_DIR"]).stat().st_mode) == 0o700


def test_rendered_config_private_and_valid(runtime: Runtime) -> None:
    config = Path(runtime.env["MOLT_RUNTIME_DIR"]) / "openclaw.json"
    state = Path(runtime.env["MOLT_STATE_DIR"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert state not in config.parents
    text = config.read_text()
    for value in secret_values(runtime.env):
        assert value not in text
    rendered = json.loads(text)
    assert rendered["gateway"]["auth"]["token"] == {
        "source": "env",
        "provider": "default",
        "id": "OPENCLAW_GATEWAY_TOKEN",
    }
    assert rendered["gateway"]["bind"] == "lan"
    result = subprocess.run(
        [OPENCLAW, "config", "validate", "--json"],
        env={**runtime.env, "OPENCLAW_CONFIG_PATH": str(config), "OPENCLAW_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["valid"] is True


def test_image_healthcheck_passes(runtime: Runtime) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox_runtime.healthcheck"],
        env={"MOLT_CONTROL_PORT": runtime.env["MOLT_CONTROL_PORT"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_skill_read_from_the_runtime_and_seen_by_openclaw(runtime: Runtime) -> None:
    shipped = Path(__file__).parents[2] / "container/sandbox_runtime/skills/cloudflare-browser"
    stale = Path(runtime.env["MOLT_STATE_DIR"]) / "workspace/skills/cloudflare-browser"
    assert not stale.exists()
    assert f"removed {stale}: the shipped skill is now read from the runtime" in runtime.output()
    result = subprocess.run(
        [OPENCLAW, "skills", "info", "cloudflare-browser", "--json"],
        env={
            **runtime.env,
            "OPENCLAW_STATE_DIR": runtime.env["MOLT_STATE_DIR"],
            "OPENCLAW_CONFIG_PATH": str(Path(runtime.env["MOLT_RUNTIME_DIR"]) / "openclaw.json"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads(result.stdout)
    assert info["source"] == "openclaw-extra"
    assert Path(info["filePath"]).resolve() == (shipped / "SKILL.md").resolve()
    assert "Browser Rendering" in info["description"]
    assert info["eligible"] is True and info["modelVisible"] is True
    assert len(info["description"]) <= 160


async def test_openclaw_browser_tool_works_through_the_bridge(runtime: Runtime) -> None:
    """OpenClaw's own browser tool, via the rendered profile, screenshots through the bridge."""
    env = {
        **runtime.env,
        "OPENCLAW_STATE_DIR": runtime.env["MOLT_STATE_DIR"],
        "OPENCLAW_CONFIG_PATH": str(Path(runtime.env["MOLT_RUNTIME_DIR"]) / "openclaw.json"),
    }
    run = await asyncio.create_subprocess_exec(
        OPENCLAW,
        "browser",
        "screenshot",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), 90)
    assert run.returncode == 0, out.decode() + err.decode()
    shot = json.loads(out)
    assert shot["ok"] is True
    assert Path(shot["path"]).read_bytes().startswith(b"\x89PNG")
    _, logs = await control(runtime, "GET", "/v1/logs?lines=1000")
    assert any("cdp: browser session opened" in line for line in logs["lines"])


# --------------------------------------------------------------------------- gateway auth


async def test_gateway_http_needs_the_token(runtime: Runtime) -> None:
    url = f"http://127.0.0.1:{runtime.gateway_port}/tools/invoke"
    body = {"tool": "sessions_list", "args": {}}
    token = runtime.env["OPENCLAW_GATEWAY_TOKEN"]
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as response:
            assert response.status == 401
        async with session.post(url, json=body, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()


async def _connect(
    port: int, auth: dict[str, str] | None, device: bool, forwarded_for: str | None = None
) -> dict:
    """One gateway WebSocket handshake; returns the `connect` response frame."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    device_id = hashlib.sha256(raw).hexdigest()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"ws://127.0.0.1:{port}/",
            headers={"X-Forwarded-For": forwarded_for} if forwarded_for else None,
        ) as ws,
    ):
        challenge = await ws.receive_json(timeout=15)
        assert challenge["event"] == "connect.challenge"
        nonce, ts = challenge["payload"]["nonce"], challenge["payload"]["ts"]
        client_id, mode = ("cli", "cli") if device else ("gateway-client", "backend")
        params: dict[str, Any] = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {
                "id": client_id,
                "version": "0.1.0",
                "platform": "linux",
                "mode": mode,
                "displayName": f"pytest {uuid.uuid4().hex[:6]}",
            },
            "role": "operator",
            "scopes": ["operator.read"],
            "caps": [],
        }
        if auth is not None:
            params["auth"] = auth
        if device:
            # OpenClaw's v3 device-auth payload (buildDeviceAuthPayloadV3 in the package).
            fields = ["v3", device_id, client_id, mode, "operator", "operator.read", str(ts)]
            fields += [(auth or {}).get("token", ""), nonce, "linux", ""]
            signed = "|".join(fields)
            signature = base64.urlsafe_b64encode(key.sign(signed.encode())).rstrip(b"=")
            params["device"] = {
                "id": device_id,
                "publicKey": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
                "signature": signature.decode(),
                "signedAt": ts,
                "nonce": nonce,
            }
        await ws.send_json(
            {"type": "req", "id": str(uuid.uuid4()), "method": "connect", "params": params}
        )
        while True:
            frame = await ws.receive_json(timeout=15)
            if frame.get("type") == "res":
                return frame


async def test_gateway_websocket_needs_the_token(runtime: Runtime) -> None:
    token = runtime.env["OPENCLAW_GATEWAY_TOKEN"]
    ok = await _connect(runtime.gateway_port, {"token": token}, device=False)
    assert ok["ok"] is True and ok["payload"]["type"] == "hello-ok"
    wrong = await _connect(runtime.gateway_port, {"token": "nope" * 8}, device=False)
    assert wrong["ok"] is False
    assert wrong["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    missing = await _connect(runtime.gateway_port, None, device=False)
    assert missing["ok"] is False


# -------------------------------------------------------------------------- device pairing


async def test_device_pairing_approve_reject_revoke(runtime: Runtime) -> None:
    token = runtime.env["OPENCLAW_GATEWAY_TOKEN"]
    remote = "203.0.113.7"
    first = await _connect(runtime.gateway_port, {"token": token}, True, remote)
    second = await _connect(runtime.gateway_port, {"token": token}, True, remote)
    for frame in (first, second):
        assert frame["ok"] is False and frame["error"]["details"]["code"] == "PAIRING_REQUIRED"
    req1 = first["error"]["details"]["requestId"]
    req2 = second["error"]["details"]["requestId"]
    dev1 = first["error"]["details"]["deviceId"]

    status, listed = await control(runtime, "GET", "/v1/devices")
    assert status == 200, listed
    pending = {p["request_id"]: p for p in listed["pending"]}
    assert {req1, req2} <= set(pending)
    assert pending[req1]["device_id"] == dev1
    assert pending[req1]["platform"] == "linux"
    assert pending[req1]["remote_ip"] == remote
    assert pending[req1]["created_at"].endswith("Z")

    status, body = await control(runtime, "POST", f"/v1/devices/pending/{req1}/approve")
    assert status == 200, body
    assert body["approved"]["device"]["deviceId"] == dev1
    status, body = await control(runtime, "POST", f"/v1/devices/pending/{req2}/reject")
    assert status == 200, body

    status, listed = await control(runtime, "GET", "/v1/devices")
    assert [p["device_id"] for p in listed["paired"]] == [dev1]
    assert listed["pending"] == []
    assert listed["paired"][0]["roles"] == ["operator"]

    status, body = await control(runtime, "POST", f"/v1/devices/{dev1}/revoke")
    assert status == 200, body
    status, listed = await control(runtime, "GET", "/v1/devices")
    assert listed["paired"] == []

    # A stale id is OpenClaw's "unknown", surfaced as 404 with a hint.
    status, body = await control(runtime, "POST", f"/v1/devices/pending/{req1}/approve")
    assert status == 404 and "list the devices again" in body["error"]


@pytest.mark.parametrize(
    "bad_id",
    ["-rf", "a;id", "$(id)", "a b", "x" * 129, "..", "a|b", "a`b`", "é"],
)
async def test_bad_device_ids_never_reach_the_cli(runtime: Runtime, bad_id: str) -> None:
    before = await control(runtime, "GET", "/v1/logs?lines=1000")
    quoted = aiohttp.helpers.quote(bad_id, safe="")  # type: ignore[attr-defined]
    for path in (
        f"/v1/devices/pending/{quoted}/approve",
        f"/v1/devices/pending/{quoted}/reject",
        f"/v1/devices/{quoted}/revoke",
    ):
        status, body = await control(runtime, "POST", path)
        assert status in (400, 404), (path, status, body)
        if status == 400:
            assert "letters, digits" in body["error"]
    _, after = await control(runtime, "GET", "/v1/logs?lines=1000")
    runs_before = [line for line in before[1]["lines"] if "running openclaw devices" in line]
    runs_after = [line for line in after["lines"] if "running openclaw devices" in line]
    assert len(runs_after) == len(runs_before)


# ------------------------------------------------------------------------ control API auth


def _bad_tokens(env: dict[str, str]) -> dict[str, str | None]:
    now = int(time.time())
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(
            json.dumps(
                {
                    "iss": "moltworker-worker",
                    "aud": "moltworker-control",
                    "sub": "a@b.c",
                    "iat": now,
                    "exp": now + 60,
                }
            ).encode()
        )
        .rstrip(b"=")
        .decode()
        + "."
    )
    return {
        "none": None,
        "garbage": "not-a-jwt",
        "wrong signature": mint(env, key="x" * 40),
        "expired": mint(env, iat=now - 200, exp=now - 100),
        "wrong audience": mint(env, aud="something-else"),
        "wrong issuer": mint(env, iss="someone-else"),
        "alg none": unsigned,
        "missing exp": mint(env, exp=None),
        "missing iat": mint(env, iat=None),
        "missing sub": mint(env, sub=None),
        "lifetime over cap": mint(env, exp=now + 3600),
        "issued in the future": mint(env, iat=now + 600, exp=now + 700),
    }


async def test_control_api_refuses_bad_tokens(runtime: Runtime) -> None:
    for name, token in _bad_tokens(runtime.env).items():
        for method, path in (
            ("GET", "/v1/status"),
            ("POST", "/v1/gateway/restart"),
            ("GET", "/v1/devices"),
        ):
            status, body = await control(runtime, method, path, token=token)
            assert (status, body) == (401, {"error": "unauthorized"}), name
    status, body = await control(runtime, "GET", "/healthz", token=None)
    assert status == 200 and body == {"ok": True, "phase": "ready"}


async def test_logs_are_bounded_and_redacted(runtime: Runtime) -> None:
    for bad in ("0", "1001", "abc", "-5"):
        status, body = await control(runtime, "GET", f"/v1/logs?lines={bad}")
        assert status == 400, bad
    status, body = await control(runtime, "GET", "/v1/logs?lines=1000")
    assert status == 200 and 0 < len(body["lines"]) <= 1000
    text = "\n".join(body["lines"])
    assert "gateway ready" in text
    for value in secret_values(runtime.env):
        assert value not in text


def test_no_secret_on_any_command_line(runtime: Runtime) -> None:
    assert runtime.proc is not None
    tree = process_tree(runtime.proc.pid)
    assert len(tree) >= 2  # the runtime and at least the gateway
    lines = [cmdline(pid) for pid in tree]
    # The gateway renames its process title to "openclaw-gateway".
    assert any("openclaw-gateway" in line or "gateway run" in line for line in lines), lines
    for value in secret_values(runtime.env):
        for line in lines:
            assert value not in line


async def test_gateway_env_holds_only_its_secrets(runtime: Runtime) -> None:
    _, status = await control(runtime, "GET", "/v1/status")
    gateway = status["gateway"]["pid"]
    environ = Path(f"/proc/{gateway}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if b"=" in item}
    assert "OPENCLAW_GATEWAY_TOKEN" in names and "ANTHROPIC_API_KEY" in names
    for name in ("MOLT_CONTROL_SECRET", "MOLT_SNAPSHOT_KEY", "MOLT_CDP_SECRET"):
        assert name not in names


# ----------------------------------------------------------------- snapshots and restarts


async def test_snapshot_endpoints(runtime: Runtime) -> None:
    note = Path(runtime.env["MOLT_STATE_DIR"]) / "workspace" / "note.md"
    note.write_text(f"written by the test at {time.time()}\n")
    status, taken = await control(runtime, "POST", "/v1/snapshots")
    assert status == 200, taken
    assert isinstance(taken["id"], str) and taken["created_at"].endswith("Z")
    status, listed = await control(runtime, "GET", "/v1/snapshots")
    assert status == 200
    assert listed["head"] == listed["snapshots"][0]["id"]
    assert taken["id"] in [s["id"] for s in listed["snapshots"]]
    assert all(s["files"] >= 1 and s["size"] > 0 for s in listed["snapshots"])
    status, again = await control(runtime, "POST", "/v1/snapshots")
    assert status == 200 and again["changed"] is False and again["id"] == listed["head"]


async def test_killed_gateway_is_restarted(runtime: Runtime) -> None:
    _, before = await control(runtime, "GET", "/v1/status")
    old_pid = before["gateway"]["pid"]
    os.killpg(old_pid, signal.SIGKILL)
    after = await wait_status(
        runtime,
        lambda s: (
            s["gateway"]["restarts"] == before["gateway"]["restarts"] + 1
            and s["gateway"]["state"] == "ready"
        ),
        timeout=90,
    )
    assert after["gateway"]["pid"] != old_pid
    assert after["phase"] == "ready"


async def test_restart_endpoint(runtime: Runtime) -> None:
    _, before = await control(runtime, "GET", "/v1/status")
    status, body = await control(runtime, "POST", "/v1/gateway/restart")
    assert (status, body) == (200, {"restarted": True})
    after = await wait_status(
        runtime,
        lambda s: (
            s["gateway"]["restarts"] == before["gateway"]["restarts"] + 1
            and s["gateway"]["state"] == "ready"
        ),
        timeout=90,
    )
    assert after["gateway"]["pid"] != before["gateway"]["pid"]


async def test_sigterm_stops_cleanly_with_a_final_snapshot(runtime: Runtime) -> None:
    note = Path(runtime.env["MOLT_STATE_DIR"]) / "workspace" / "last-words.md"
    _, before = await control(runtime, "GET", "/v1/snapshots")
    note.write_text("written just before SIGTERM\n")
    assert runtime.proc is not None
    runtime.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(runtime.wait_exit, 60) == 0
    output = runtime.output()
    assert "final snapshot: " in output and "final snapshot: no changes" not in output
    for value in secret_values(runtime.env):
        assert value not in output
    # Secrets live only in the process env: none was written into the state (so none is in a
    # snapshot), the rendered config included.
    for path in Path(runtime.env["MOLT_STATE_DIR"]).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for value in secret_values(runtime.env):
                assert value.encode() not in data, path
    # What the final snapshot holds is what the next boot gets back.
    restored = runtime.tmp / "restored"
    manager = SnapshotManager(
        store=open_store(runtime.env), key=key_from_env(runtime.env), state_dir=restored
    )
    result = await manager.restore()
    assert result.snapshot is not None
    assert result.snapshot.id not in [s["id"] for s in before["snapshots"]]
    assert (restored / "workspace" / "last-words.md").read_text() == "written just before SIGTERM\n"
