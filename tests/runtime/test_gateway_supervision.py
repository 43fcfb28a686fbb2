"""Restart policy of the gateway supervision, with a gateway that always crashes.

The crashing gateway is a stand-in script for the `openclaw` binary: it answers `config
validate` and `--version` like OpenClaw and exits with an error on `gateway run`. The real
gateway's restart after `kill -9` is covered in test_runtime_gateway.py.
"""

from __future__ import annotations

import json
import signal
import stat
import time
import urllib.request
from pathlib import Path

import pytest
from runtime_harness import Runtime, base_env, mint
from sandbox_runtime.gateway import BACKOFF_CAP_S, backoff_delay

pytestmark = pytest.mark.timeout(60)

CRASHING = """#!/bin/sh
case "$1" in
  config) echo '{"valid":true,"path":"x","warnings":[]}' ;;
  --version) echo 'OpenClaw 0.0.0-test (crashing stand-in)' ;;
  gateway) echo "starting, token-free argv: $*"
           echo "state entries: $(ls -A "$OPENCLAW_STATE_DIR")."
           echo "boom: $OPENCLAW_GATEWAY_TOKEN" >&2; exit 7 ;;
  *) exit 2 ;;
esac
"""


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, BACKOFF_CAP_S, BACKOFF_CAP_S]
    assert backoff_delay(10_000) == BACKOFF_CAP_S


def status(rt: Runtime) -> dict:
    url = f"{rt.control}/v1/status"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {mint(rt.env)}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def test_crashing_gateway_is_restarted_with_backoff_and_stop_still_works(tmp_path: Path) -> None:
    fake = tmp_path / "openclaw"
    fake.write_text(CRASHING)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = base_env(tmp_path)
    env["MOLT_OPENCLAW_BIN"] = str(fake)
    rt = Runtime(env, tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        seen: dict = {}
        while time.monotonic() < deadline:
            try:
                seen = status(rt)
            except OSError:
                seen = {}
            if seen.get("gateway", {}).get("restarts", 0) >= 3:
                break
            time.sleep(0.3)
        assert seen["gateway"]["restarts"] >= 3, seen
        # Never ready, so the sandbox stays "starting" and the image healthcheck fails.
        assert seen["phase"] == "starting"
        assert seen["gateway"]["state"] in ("backoff", "starting")
        # Three crashes take at least 1 + 2 s of backoff: not a tight loop.
        time.sleep(1)
        assert status(rt)["gateway"]["restarts"] <= 4

        assert rt.proc is not None
        rt.proc.send_signal(signal.SIGTERM)
        assert rt.wait_exit(30) == 0
        output = rt.output()
        assert "gateway exited; restart 3 in 4s" in output
        assert "boom: [redacted]" in output
        # A first boot hands OpenClaw an empty state dir, so it can skip its migration scan.
        assert output.count("state entries: .") >= 3, output
        assert env["OPENCLAW_GATEWAY_TOKEN"] not in output
    finally:
        rt.stop_all()
