"""Boot-to-ready benchmark for the sandbox runtime.

    .cache/venv/bin/python scripts/bench_boot.py [--runs 3] [--state-mb 100]

Measures, as the median of --runs boots each:
  (a) bare `openclaw gateway run` until its /readyz answers 200,
  (b) the supervisor (`python -m sandbox_runtime`) with an empty store until its /healthz says
      phase "ready" (restore + config render + `openclaw config validate` + gateway boot),
  (c) the same with a snapshot of ~--state-mb MB of state to restore first (into an empty state
      dir, as a fresh container would).
Everything runs on ephemeral ports in a temporary directory; nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "container"))

from sandbox_runtime.snapshots import SnapshotManager, open_store  # noqa: E402

TOOLS = json.loads((ROOT / ".cache" / "tools.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def timed_boot(
    cmd: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path | None = None
) -> float:
    started = time.monotonic()
    output = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(  # noqa: S603 - argument list
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=output, start_new_session=True
    )
    try:
        while not ready():
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited with {proc.returncode} before it was ready")
            if time.monotonic() - started > 300:
                raise SystemExit(f"{cmd[0]} not ready after 300 s")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log:
            output.close()  # type: ignore[union-attr]


def base_env(tmp: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(TOOLS['node']).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_urlsafe(32),
    }


def bare_gateway(tmp: Path) -> float:
    port = free_port()
    state = tmp / f"bare-{port}"
    state.mkdir()
    config = state / "openclaw.json"
    config.write_text(
        json.dumps(
            {
                "gateway": {
                    "mode": "local",
                    "port": port,
                    "bind": "loopback",
                    "auth": {
                        "mode": "token",
                        "token": {
                            "source": "env",
                            "provider": "default",
                            "id": "OPENCLAW_GATEWAY_TOKEN",
                        },
                    },
                }
            }
        )
    )
    env = base_env(tmp) | {
        "OPENCLAW_STATE_DIR": str(state / "state"),
        "OPENCLAW_CONFIG_PATH": str(config),
    }
    cmd = [TOOLS["openclaw"], "gateway", "run", "--port", str(port), "--bind", "loopback"]
    return timed_boot(cmd, env, lambda: get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200)


def runtime_env(tmp: Path, store: Path, key: str) -> dict[str, str]:
    run = tmp / f"run-{secrets.token_hex(4)}"
    return base_env(tmp) | {
        "MOLT_OPENCLAW_BIN": TOOLS["openclaw"],
        "MOLT_CONTROL_SECRET": secrets.token_urlsafe(48),
        "MOLT_SNAPSHOT_KEY": key,
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(store),
        "MOLT_STATE_DIR": str(run / "state"),
        "MOLT_RUNTIME_DIR": str(run / "rt"),
        "MOLT_GATEWAY_PORT": str(free_port()),
        "MOLT_CONTROL_PORT": str(free_port()),
        "MOLT_CDP_PORT": str(free_port()),
    }


class Phases:
    """Where a supervised boot spent its time, read from the runtime's own log timestamps."""

    def __init__(self) -> None:
        self.restore: list[float] = []
        self.before_gateway: list[float] = []
        self.gateway: list[float] = []

    def add(self, log: Path, spawned: datetime) -> None:
        marks: dict[str, datetime] = {}
        for line in log.read_text(errors="replace").splitlines():
            stamp = line[:23]
            for mark, text in (
                ("restore", "restoring state into"),
                ("restored", "restored snapshot"),
                ("restored", "the store holds no snapshot"),
                ("gateway", "starting gateway:"),
                ("ready", "sandbox ready"),
            ):
                if text in line and mark not in marks:
                    marks[mark] = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        self.restore.append((marks["restored"] - marks["restore"]).total_seconds())
        self.before_gateway.append((marks["gateway"] - spawned).total_seconds())
        self.gateway.append((marks["ready"] - marks["gateway"]).total_seconds())


def supervised(tmp: Path, store: Path, key: str, phases: Phases) -> float:
    env = runtime_env(tmp, store, key)
    url = f"http://127.0.0.1:{env['MOLT_CONTROL_PORT']}/healthz"
    cmd = [sys.executable, "-m", "sandbox_runtime"]
    log = tmp / f"runtime-{secrets.token_hex(4)}.log"
    spawned = datetime.now()  # local time, like the runtime log stamps
    took = timed_boot(cmd, env, lambda: get_json(url)[1].get("phase") == "ready", log)
    phases.add(log, spawned)
    return took


def empty_store(tmp: Path) -> Path:
    # A fresh one per run: each supervised run leaves its final snapshot behind.
    path = tmp / f"store-empty-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def seed_store(tmp: Path, store: Path, key: str, megabytes: int) -> None:
    """A snapshot holding `megabytes` of incompressible files, as a returning user's state."""
    state = tmp / "seed-state"
    files = state / "workspace" / "bench"
    files.mkdir(parents=True)
    for index in range(megabytes):
        (files / f"blob-{index:04d}.bin").write_bytes(os.urandom(1 << 20))
    manager = SnapshotManager(
        store=open_store({"MOLT_STORE": "dir", "MOLT_STORE_DIR": str(store)}),
        key=base64.b64decode(key),
        state_dir=state,
    )

    async def seed() -> None:
        await manager.restore()
        info = await manager.snapshot("bench seed")
        assert info is not None
        print(f"seeded snapshot {info.id}: {info.files} files, {info.size / 1e6:.0f} MB")

    asyncio.run(seed())


def report(name: str, samples: list[float]) -> None:
    values = ", ".join(f"{s:.1f}" for s in samples)
    print(f"{name:<44} median {statistics.median(samples):6.1f} s   (runs: {values})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Boot-to-ready benchmark for the sandbox runtime.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--state-mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as raw:
        tmp = Path(raw)
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        full_store = tmp / "store-full"
        full_store.mkdir()
        seed_store(tmp, full_store, key, args.state_mb)
        print(f"openclaw {TOOLS['openclaw']}; {os.cpu_count()} CPUs; {args.runs} runs each")
        report(
            "(a) bare openclaw gateway run -> /readyz",
            [bare_gateway(tmp) for _ in range(args.runs)],
        )
        for name, store_for in (
            ("(b) supervisor, empty state -> ready", lambda: empty_store(tmp)),
            (f"(c) supervisor, restore {args.state_mb} MB -> ready", lambda: full_store),
        ):
            phases = Phases()
            report(name, [supervised(tmp, store_for(), key, phases) for _ in range(args.runs)])
            report("      of which: restore", phases.restore)
            report("      spawn -> gateway started", phases.before_gateway)
            report("      gateway started -> ready", phases.gateway)


if __name__ == "__main__":
    main()
