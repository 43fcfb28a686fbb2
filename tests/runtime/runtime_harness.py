"""Helpers for the sandbox runtime tests: real processes on ephemeral ports in tmp dirs."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from devstack.procs import process_tree

ROOT = Path(__file__).resolve().parents[2]
TOOLS = json.loads((ROOT / ".cache" / "tools.json").read_text())
OPENCLAW = TOOLS["openclaw"]
NODE_DIR = str(Path(TOOLS["node"]).parent)
CHROMIUM = TOOLS.get("chromium", "/usr/bin/chromium")

AUDIENCE = "moltworker-control"
ISSUER = "moltworker-worker"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def secret(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(20)}"


def base_env(tmp: Path) -> dict[str, str]:
    """A complete, valid runtime environment with fresh secrets and ephemeral ports."""
    store = tmp / "store"
    store.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{NODE_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "MOLT_OPENCLAW_BIN": OPENCLAW,
        "OPENCLAW_GATEWAY_TOKEN": secret("gwtok"),
        "MOLT_CONTROL_SECRET": secret("ctlsecret"),
        "MOLT_CDP_SECRET": secret("cdpsecret"),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(store),
        "MOLT_STATE_DIR": str(tmp / "state"),
        "MOLT_RUNTIME_DIR": str(tmp / "run"),
        "MOLT_GATEWAY_PORT": str(free_port()),
        "MOLT_CONTROL_PORT": str(free_port()),
        "MOLT_CDP_PORT": str(free_port()),
        "MOLT_SNAPSHOT_DEBOUNCE_S": "0.5",
    }


def full_env(tmp: Path) -> dict[str, str]:
    """Everything set: AI Gateway with fallbacks, all three channels, proxies, public origin."""
    env = base_env(tmp)
    env.update(
        {
            "AI_GATEWAY_BASE_URL": "https://gateway.ai.cloudflare.com/v1/acct123/molt-gw",
            "AI_GATEWAY_TOKEN": secret("aigtok"),
            "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
            "MODEL_FALLBACKS": "openai/gpt-5,anthropic/claude-haiku-4-5",
            "ANTHROPIC_API_KEY": secret("sk-ant"),
            "OPENAI_API_KEY": secret("sk-openai"),
            "TELEGRAM_BOT_TOKEN": secret("123456:tg"),
            "DISCORD_BOT_TOKEN": secret("discord"),
            "SLACK_BOT_TOKEN": secret("xoxb"),
            "SLACK_APP_TOKEN": secret("xapp"),
            "TELEGRAM_DM_POLICY": "allowlist",
            "DISCORD_DM_POLICY": "open",
            "SLACK_DM_POLICY": "pairing",
            "MOLT_TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8",
            "MOLT_PUBLIC_ORIGIN": "https://molt.example.com",
            "MOLT_CDP_UPSTREAM": "wss://molt.example.com/cdp",
        }
    )
    return env


SECRET_NAMES = (
    "OPENCLAW_GATEWAY_TOKEN",
    "MOLT_CONTROL_SECRET",
    "MOLT_CDP_SECRET",
    "MOLT_SNAPSHOT_KEY",
    "AI_GATEWAY_TOKEN",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
)


def secret_values(env: dict[str, str]) -> list[str]:
    return [env[name] for name in SECRET_NAMES if env.get(name)]


def mint(env: dict[str, str], **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "admin@example.com",
        "iat": now,
        "exp": now + 60,
    }
    key = overrides.pop("key", env["MOLT_CONTROL_SECRET"])
    algorithm = overrides.pop("algorithm", "HS256")
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=algorithm)


@dataclass
class Runtime:
    """`python -m sandbox_runtime` as a child process, output captured to files."""

    env: dict[str, str]
    tmp: Path
    proc: subprocess.Popen[bytes] | None = None
    stdout_path: Path = field(init=False)
    stderr_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout_path = self.tmp / "runtime.stdout"
        self.stderr_path = self.tmp / "runtime.stderr"

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.env['MOLT_CONTROL_PORT']}"

    @property
    def gateway_port(self) -> int:
        return int(self.env["MOLT_GATEWAY_PORT"])

    def start(self) -> Runtime:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox_runtime"],
            env=self.env,
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
            cwd=self.tmp,
        )
        return self

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"runtime exited early:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.control}/healthz", timeout=2) as response:  # noqa: S310
                    if json.loads(response.read()).get("phase") == "ready":
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"runtime not ready after {timeout}s:\n{self.output()[-4000:]}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def stop_all(self, *, graceful: bool = True) -> None:
        """End the runtime and every process it started, whatever state they are in.

        `graceful=False` skips SIGTERM, for a module that does not test stopping: after a config
        reload OpenClaw's Telegram channel cannot abort its poll without a network and the
        gateway takes the runtime's whole 20 s grace (OpenClaw: "channel stop exceeded 5000ms").
        """
        assert self.proc is not None
        tree = process_tree(self.proc.pid)
        if graceful:
            with suppress(subprocess.TimeoutExpired):
                self.terminate()
        for pid in tree:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


@contextmanager
def running(env: dict[str, str], tmp: Path) -> Iterator[Runtime]:
    runtime = Runtime(env, tmp).start()
    try:
        runtime.wait_ready()
        yield runtime
    finally:
        runtime.stop_all()


@contextmanager
def chromium(profile: Path) -> Iterator[str]:
    """A headless Chromium on an ephemeral port; yields its browser WebSocket URL."""
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # tests run as root in a container
            "--disable-gpu",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in itertools.islice(proc.stderr, 200):
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "chromium did not print its DevTools URL"
        # Keep draining its stderr, or a chatty Chromium blocks on a full pipe.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""
