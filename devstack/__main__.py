"""`python -m devstack` (what `make dev` runs): the whole system on loopback, until Ctrl-C.

With `--containers` (`make dev CONTAINERS=1`) the Worker runs its production path instead: the
`Sandbox` Durable Object starts the real sandbox image under podman (devstack/containers.py).
With `--runtime-only` the sandbox runtime runs alone, without the Worker (for work on the
runtime): the Control UI on the gateway's own port. Every mode uses the same credentials
(devstack/secrets.py) and the local ones the same snapshot store, so each resumes the others.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol, cast

from .base import ROOT, DevstackError
from .secrets import ADMIN_TOKEN_FILE, RUNTIME_SECRETS_FILE, SecretsError
from .stack import LocalStack, LocalStackConfig

if TYPE_CHECKING:
    from .containers import ContainerStack
    from .procs import Child

DEFAULT_HOME = ROOT / ".cache" / "devstack"
SECRETS_FILE = RUNTIME_SECRETS_FILE
# The local modes' snapshot store (git-ignored): `make dev` and `--runtime-only` resume each other.
STORE_DIR = ROOT / "state" / "snapshots"
DEFAULT_PORT = 8787
# A Worker that dies this often is not the wrangler dev bug revive_worker() works around.
MAX_WORKER_REVIVALS = 20
# Settings a person may pass in the environment for one run (docs/interfaces.md): the model and
# the chat channels.
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
)


class Interrupted(Exception):
    pass


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def say(message: str) -> None:
    print(f"[devstack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(stack: LocalStack, show_secrets: bool) -> str:
    env = stack.runtime_env()
    if stack.config.runtime_only:
        lines = [
            "",
            "The sandbox runtime is running alone on loopback (no Worker):",
            f"  Control UI     {stack.gateway_url}/   (paste OPENCLAW_GATEWAY_TOKEN)",
            f"  Control API    {stack.control_url}/healthz",
            f"  Gateway token  OPENCLAW_GATEWAY_TOKEN in {shown(SECRETS_FILE)} (mode 0600)",
        ]
    else:
        lines = [
            "",
            "The agent is running on loopback:",
            f"  Control UI     {stack.url}/",
            "                 paste OPENCLAW_GATEWAY_TOKEN as the Gateway secret, then approve",
            "                 the browser under 'Pending pairing requests' in the admin UI",
            f"  Admin UI       {stack.url}/_admin/   (sign in with LOCAL_ADMIN_TOKEN)",
            f"  Gateway token  OPENCLAW_GATEWAY_TOKEN in {shown(SECRETS_FILE)} (mode 0600)",
            f"  Admin token    {shown(ADMIN_TOKEN_FILE)} (mode 0600)",
        ]
    lines += [
        f"  State          {shown(stack.store_dir)}   (encrypted snapshots, restored at start)",
        f"  Logs           {shown(stack.logs_dir)}/",
    ]
    if env.get("MODEL_PRIMARY"):
        via = f" via {env['MODEL_BASE_URL']}" if env.get("MODEL_BASE_URL") else ""
        lines.append(f"  Model          {env['MODEL_PRIMARY']}{via}")
    else:
        lines += [
            "  Model          none: chat needs a model provider key. Stop, then start again",
            "                 with ANTHROPIC_API_KEY or OPENAI_API_KEY exported in your shell (or",
            "                 MODEL_BASE_URL=http://127.0.0.1:<port>, a local compatible server).",
        ]
    if show_secrets:
        lines += [
            "",
            f"  OPENCLAW_GATEWAY_TOKEN={stack.secrets['OPENCLAW_GATEWAY_TOKEN']}",
            f"  LOCAL_ADMIN_TOKEN={stack.secrets['LOCAL_ADMIN_TOKEN']}",
        ]
    lines += ["", "Ctrl-C stops everything (the runtime writes a final snapshot first).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the Worker's port (8787)")
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help="credentials, state and logs"
    )
    parser.add_argument(
        "--show-secrets", action="store_true", help="print the gateway and admin tokens"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--containers",
        action="store_true",
        help="run the production path: the real sandbox image under podman (needs root)",
    )
    mode.add_argument(
        "--runtime-only",
        action="store_true",
        help="run the sandbox runtime alone, without the Worker (work on the runtime)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a TCP port; use 1-65535.")
    home: Path = args.home.resolve()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)

    # One stack per state directory: two runtimes writing the same store would fight over HEAD.
    lock = (home / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"another `make dev` is already running on {shown(home)}; stop it first (Ctrl-C).")
        return 1
    if not args.runtime_only and not port_free(args.port):
        say(f"127.0.0.1:{args.port} is in use; stop what listens there or pass --port <free port>.")
        return 1

    passed = {name: os.environ[name] for name in PASSTHROUGH if os.environ.get(name)}
    try:
        stack = _stack(args, home, passed)
    except (DevstackError, SecretsError) as exc:
        say(f"error: {exc}")
        return 1
    return _run(stack, args.show_secrets)


class _Running(Protocol):
    worker: Child | None
    worker_revivals: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def children(self) -> list[Child]: ...
    def revive_worker(self) -> bool: ...


def _stack(args: argparse.Namespace, home: Path, passed: dict[str, str]) -> _Running:
    if args.containers:
        # Imported here: the local modes must start on a machine without podman.
        from .containers import ContainersConfig, ContainerStack

        config = ContainersConfig(home=home / "containers", worker_port=args.port, model_env=passed)
        return ContainerStack(config, progress=say)
    return LocalStack(
        LocalStackConfig(
            home=home,
            worker_port=args.port,
            model_env=passed,
            store_dir=STORE_DIR,
            runtime_only=args.runtime_only,
        ),
        progress=say,
    )


def _run(stack: _Running, show_secrets: bool) -> int:
    """Start, watch until Ctrl-C or a child dies, stop; the exit status of the launcher."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    code = 0
    try:
        stack.start()
        say(f"everything is up in {time.monotonic() - started:.1f}s")
        if isinstance(stack, LocalStack):
            print(summary(stack, show_secrets), flush=True)
        else:
            print(containers_summary(cast("ContainerStack", stack), show_secrets), flush=True)
        while True:
            for child in stack.children():
                # wrangler dev's own crash (devstack.base.WorkerReviver), in either mode.
                if child is stack.worker and stack.worker_revivals < MAX_WORKER_REVIVALS:
                    stack.revive_worker()
                if not child.running():
                    raise DevstackError(
                        f"{child.name} exited with {child.returncode()}; see {child.log_path}:\n"
                        f"{child.log_tail(20)}"
                    )
            time.sleep(1)
    except Interrupted:
        say("stopping")
    except DevstackError as exc:
        say(f"error: {exc}")
        code = 1
    finally:
        # A second Ctrl-C while stopping must not cut the final snapshot short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    say("stopped; the next start restores this state" if code == 0 else "stopped")
    return code


def containers_summary(stack: ContainerStack, show_secrets: bool) -> str:
    lines = [
        "",
        "The production path is running (the Worker's Sandbox object starts the real image):",
        f"  Control UI     {stack.url}/   (the first request boots the container: the loading",
        "                 page shows its boot phases, then the Control UI)",
        f"  Admin UI       {stack.url}/_admin/   (sign in with LOCAL_ADMIN_TOKEN)",
        f"  Gateway token  OPENCLAW_GATEWAY_TOKEN in {shown(SECRETS_FILE)} (mode 0600)",
        f"  Admin token    {shown(ADMIN_TOKEN_FILE)} (mode 0600)",
        f"  State          the S3 store (moto) at {stack.store_url}: in memory, gone when this",
        "                 stops; it survives the container's sleeps and restarts meanwhile",
        f"  Sleep          the container stops after {stack.config.sleep_after} without requests"
        " and boots again on the next one",
        f"  Logs           {shown(stack.logs_dir)}/ (container.log: the container's output)",
    ]
    if show_secrets:
        lines += [
            "",
            f"  OPENCLAW_GATEWAY_TOKEN={stack.secrets['OPENCLAW_GATEWAY_TOKEN']}",
            f"  LOCAL_ADMIN_TOKEN={stack.secrets['LOCAL_ADMIN_TOKEN']}",
        ]
    lines += ["", "Ctrl-C stops the container (final snapshot), the Worker and the rest.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
