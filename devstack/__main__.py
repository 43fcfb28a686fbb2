"""`python -m devstack` (what `make dev` runs): the whole system on loopback, until Ctrl-C.

With `--containers` (`make dev CONTAINERS=1`) the Worker runs its production path instead: the
`Sandbox` Durable Object starts the real sandbox image under podman (devstack/containers.py).
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
from typing import TYPE_CHECKING

from .secrets import ADMIN_TOKEN_FILE, SecretsError, runtime_launcher
from .stack import ROOT, Stack, StackConfig, StackError

if TYPE_CHECKING:
    from .containers import ContainerStack

DEFAULT_HOME = ROOT / ".cache" / "devstack"
SECRETS_FILE = ROOT / ".cache" / "local" / "secrets.json"  # written by scripts/dev.py
DEFAULT_PORT = 8787
# A Worker that dies this often is not the wrangler dev bug revive_worker() works around.
MAX_WORKER_REVIVALS = 20
# Settings a person may pass in the environment for one run instead of the credentials file.
MODEL_VARS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "MODEL_PRIMARY",
    "MODEL_FALLBACKS",
    "MODEL_BASE_URL",
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


def summary(stack: Stack, show_secrets: bool) -> str:
    env = stack.runtime_env()
    lines = [
        "",
        "The agent is running on loopback:",
        f"  Control UI     {stack.url}/",
        "                 paste OPENCLAW_GATEWAY_TOKEN as the Gateway secret, then approve the",
        "                 browser under 'Pending pairing requests' in the admin UI",
        f"  Admin UI       {stack.url}/_admin/   (sign in with LOCAL_ADMIN_TOKEN)",
        f"  Gateway token  OPENCLAW_GATEWAY_TOKEN in {shown(SECRETS_FILE)} (mode 0600)",
        f"  Admin token    {shown(ADMIN_TOKEN_FILE)} (mode 0600)",
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
    parser.add_argument(
        "--containers",
        action="store_true",
        help="run the production path: the real sandbox image under podman (needs root)",
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
    if not port_free(args.port):
        say(f"127.0.0.1:{args.port} is in use; stop what listens there or pass --port <free port>.")
        return 1

    model_env = {name: os.environ[name] for name in MODEL_VARS if os.environ.get(name)}
    if args.containers:
        return _run_containers(home, args.port, model_env, args.show_secrets)
    try:
        # The same snapshot store as `python scripts/dev.py`, so either launcher resumes the other.
        store_dir = Path(runtime_launcher().STORE_DIR)
        stack = Stack(
            StackConfig(home=home, worker_port=args.port, model_env=model_env, store_dir=store_dir),
            progress=say,
        )
    except (StackError, SecretsError) as exc:
        say(f"error: {exc}")
        return 1
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        stack.start()
        say(f"everything is up in {time.monotonic() - started:.1f}s")
        print(summary(stack, args.show_secrets), flush=True)
        while True:
            for child in stack.children():
                if child is stack.worker and stack.worker_revivals < MAX_WORKER_REVIVALS:
                    stack.revive_worker()
                elif not child.running():
                    raise StackError(
                        f"{child.name} exited with {child.returncode()}; see {child.log_path}:\n"
                        f"{child.log_tail(20)}"
                    )
            time.sleep(1)
    except Interrupted:
        say("stopping")
    except StackError as exc:
        say(f"error: {exc}")
        _stop(stack)
        return 1
    _stop(stack)
    say("stopped; the next `make dev` restores this state")
    return 0


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


def _run_containers(home: Path, port: int, model_env: dict[str, str], show_secrets: bool) -> int:
    # Imported here: the local-backend mode must start on a machine without podman.
    from .containers import ContainersConfig, ContainerStack

    try:
        stack = ContainerStack(
            ContainersConfig(home=home / "containers", worker_port=port, model_env=model_env),
            progress=say,
        )
    except (StackError, SecretsError) as exc:
        say(f"error: {exc}")
        return 1
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    code = 0
    try:
        stack.start()
        say(f"everything is up in {time.monotonic() - started:.1f}s")
        print(containers_summary(stack, show_secrets), flush=True)
        while True:
            for child in stack.children():
                if not child.running():
                    raise StackError(
                        f"{child.name} exited with {child.returncode()}; see {child.log_path}:\n"
                        f"{child.log_tail(20)}"
                    )
            time.sleep(1)
    except Interrupted:
        say("stopping")
    except StackError as exc:
        say(f"error: {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    say("stopped")
    return code


def _stop(stack: Stack) -> None:
    # A second Ctrl-C while stopping must not cut the final snapshot short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stack.stop()


if __name__ == "__main__":
    sys.exit(main())
