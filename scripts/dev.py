"""`make dev`: run the sandbox runtime (supervisor + OpenClaw gateway) on this machine.

No Cloudflare account needed. Local secrets are generated once into .cache/local/secrets.json
(mode 0600) and reused, snapshots go to a directory store under ./state/ (git-ignored), every
listener is on loopback, and a headless Chromium (when the bootstrap installed one) stands in for
Browser Rendering. Ctrl-C stops the gateway, takes a final snapshot and exits; the next start
restores that state.

Model keys are taken from your environment when set (ANTHROPIC_API_KEY, OPENAI_API_KEY,
MODEL_PRIMARY, MODEL_BASE_URL, ...); without one the system still starts and the chat explains
which setting takes a key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".cache" / "local"
SECRETS_FILE = LOCAL / "secrets.json"
STORE_DIR = ROOT / "state" / "snapshots"

# Settings a developer may pass through from their shell (see docs/interfaces.md).
PASSTHROUGH = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "MODEL_PRIMARY",
    "MODEL_FALLBACKS",
    "MODEL_BASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "TELEGRAM_DM_POLICY",
    "DISCORD_DM_POLICY",
    "SLACK_DM_POLICY",
    "MOLT_GATEWAY_PORT",
    "MOLT_CONTROL_PORT",
    "MOLT_CDP_PORT",
)


def say(message: str) -> None:
    print(f"dev: {message}", flush=True)


def local_secrets() -> dict[str, str]:
    """The local secrets, generated on first use and kept private to this user."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    if SECRETS_FILE.exists():
        if SECRETS_FILE.stat().st_mode & 0o077:
            os.chmod(SECRETS_FILE, 0o600)
        return json.loads(SECRETS_FILE.read_text())
    values = {
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_urlsafe(32),
        "MOLT_CONTROL_SECRET": secrets.token_urlsafe(48),
        "MOLT_CDP_SECRET": secrets.token_urlsafe(32),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    fd, tmp = tempfile.mkstemp(dir=LOCAL, prefix=".secrets.")
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, SECRETS_FILE)
    say(f"generated local secrets in {SECRETS_FILE.relative_to(ROOT)} (mode 0600)")
    return values


def tools() -> dict[str, str]:
    path = ROOT / ".cache" / "tools.json"
    if not path.exists():
        sys.exit("dev: run `make dev` (or python3 scripts/bootstrap.py) first.")
    return json.loads(path.read_text())


def runtime_env(found: dict[str, str], cdp_upstream: str | None) -> dict[str, str]:
    STORE_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{Path(found['node']).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(LOCAL / "home")),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "MOLT_OPENCLAW_BIN": found["openclaw"],
        "MOLT_BIND": "loopback",
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(STORE_DIR),
        "MOLT_STATE_DIR": str(LOCAL / "openclaw-state"),
        "MOLT_RUNTIME_DIR": str(LOCAL / "run"),
    }
    env.update(local_secrets())
    env.update({name: os.environ[name] for name in PASSTHROUGH if os.environ.get(name)})
    if cdp_upstream:
        env["MOLT_CDP_UPSTREAM"] = cdp_upstream
    return env


@contextlib.contextmanager
def local_browser(found: dict[str, str]) -> Iterator[str | None]:
    """A headless Chromium on loopback standing in for Browser Rendering, when installed."""
    binary = found.get("chromium")
    if not binary or not Path(binary).exists():
        say("no Chromium installed: the agent's browser tool stays unavailable")
        yield None
        return
    profile = LOCAL / "chromium-profile"
    args = [
        binary,
        "--headless=new",
        "--disable-gpu",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(  # noqa: S603 - argument list
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        url = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if match := re.search(r"DevTools listening on (ws://\S+)", line):
                url = match.group(1)
                break
        # Keep draining its stderr, or a chatty Chromium blocks on a full pipe.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        say("local Chromium started (stands in for Browser Rendering)" if url else "no Chromium")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    found = tools()
    with local_browser(found) as cdp:
        env = runtime_env(found, cdp)
        gateway_port = env.get("MOLT_GATEWAY_PORT", "18789")
        control_port = env.get("MOLT_CONTROL_PORT", "8788")
        say(f"snapshots: {STORE_DIR.relative_to(ROOT)}/ (restored on every start)")
        say(f"Control UI: http://127.0.0.1:{gateway_port}/")
        say(
            f"gateway token: in {SECRETS_FILE.relative_to(ROOT)} under OPENCLAW_GATEWAY_TOKEN "
            "(paste it into the Control UI's connect dialog)"
        )
        say(f"control API: http://127.0.0.1:{control_port}/healthz")
        say("starting the sandbox runtime; Ctrl-C stops it with a final snapshot")
        proc = subprocess.Popen([sys.executable, "-m", "sandbox_runtime"], env=env, cwd=ROOT)
        # In a terminal Ctrl-C reaches the runtime directly too; forwarding it anyway covers a
        # signal sent to this process alone (the runtime treats a repeat as the same request).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
        code = proc.wait()
    say("stopped" if code == 0 else f"the runtime exited with {code}; see the messages above")
    return code


if __name__ == "__main__":
    sys.exit(main())
