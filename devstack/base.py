"""What both local stacks are built from: the bootstrap's tools, the error they raise, the
`wrangler dev` child, the Worker's frozen copy, and waiting on a child by condition.

`LocalStack` (stack.py: the Worker's local backend and the runtime as a process) and
`ContainerStack` (containers.py: the production path, the real image under podman) differ in
what runs behind the Worker, not in how the Worker itself is started and watched.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import secrets as local_secrets
from .procs import Child, ChildExited, wait_until

ROOT = Path(__file__).resolve().parent.parent
WORKER_DIR = ROOT / "worker"
TOOLS_FILE = ROOT / ".cache" / "tools.json"
WRANGLER_JS = WORKER_DIR / "node_modules" / "wrangler" / "bin" / "wrangler.js"


class DevstackError(Exception):
    """The stack cannot start; the message names the problem and the fix."""


@dataclass(frozen=True)
class Tools:
    node: Path
    openclaw: Path
    chromium: Path

    @classmethod
    def load(cls) -> Tools:
        try:
            data = json.loads(TOOLS_FILE.read_text())
        except (OSError, ValueError):
            raise DevstackError(
                f"{TOOLS_FILE} is missing or unreadable; run `make dev` (it bootstraps first) or "
                "`python3 scripts/bootstrap.py --chromium`."
            ) from None
        missing = [name for name in ("node", "openclaw", "chromium") if not data.get(name)]
        if missing:
            raise DevstackError(
                f"{TOOLS_FILE} does not list {', '.join(missing)}; run "
                "`python3 scripts/bootstrap.py --chromium`."
            )
        tools = cls(Path(data["node"]), Path(data["openclaw"]), Path(data["chromium"]))
        for path in (tools.node, tools.openclaw, tools.chromium):
            if not path.exists():
                raise DevstackError(
                    f"{path} does not exist; run `python3 scripts/bootstrap.py --chromium`."
                )
        wrangler = WORKER_DIR / "node_modules" / "wrangler" / "bin" / "wrangler.js"
        if not wrangler.exists():
            raise DevstackError(f"{wrangler} is missing; run `python3 scripts/bootstrap.py`.")
        return tools


def load_secrets(given: Mapping[str, str] | None) -> dict[str, str]:
    """`given` (tests, benchmarks), else the local run's persistent credentials."""
    try:
        return dict(given or local_secrets.local_secrets())
    except local_secrets.SecretsError as exc:
        raise DevstackError(str(exc)) from None


def wait_child(check: Callable[[], bool], timeout: float, what: str, child: Child) -> float:
    """Seconds until `check` holds; DevstackError with `child`'s log if it exits or times out."""
    try:
        return wait_until(check, timeout=timeout, what=what, alive=child)
    except ChildExited as exc:
        raise DevstackError(str(exc)) from None
    except TimeoutError as exc:
        raise DevstackError(f"{exc}; see {child.log_path}:\n{child.log_tail()}") from None


def wrangler_dev(
    tools: Tools,
    *,
    home: Path,
    logs_dir: Path,
    worker_dir: Path,
    port: int,
    inspector_port: int,
    worker_vars: Mapping[str, str],
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Child:
    """`wrangler dev` on 127.0.0.1:`port` (not started). The Worker's settings go through a 0600
    env file (`--env-file`), never its command line."""
    env_file = home / "worker.env"
    lines = [f"{name}={value}" for name, value in worker_vars.items()]
    local_secrets.write_private(env_file, "\n".join(lines) + "\n")
    env = {
        **(extra_env or {}),
        "PATH": f"{tools.node.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home / "home"),
        "LANG": "C.UTF-8",
        "WRANGLER_SEND_METRICS": "false",
        "WRANGLER_LOG_PATH": str(logs_dir / "wrangler"),
        "XDG_CONFIG_HOME": str(home / "home" / ".config"),
        "CI": "1",  # no prompts, no update check banner
    }
    argv = [
        str(tools.node),
        str(WRANGLER_JS),
        "dev",
        *extra_args,
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--inspector-ip",
        "127.0.0.1",
        "--inspector-port",
        str(inspector_port),
        "--env-file",
        str(env_file),
        "--persist-to",
        str(home / "wrangler-state"),
        "--show-interactive-dev-session=false",
        "--live-reload=false",
    ]
    return Child("wrangler dev", argv, env=env, cwd=worker_dir, log_path=logs_dir / "worker.log")


def frozen_worker(home: Path) -> Path:
    """A copy of the Worker's sources under `home` (node_modules linked, not copied).

    The copy sits in a directory whose other entries link to the repository's, so paths in
    wrangler.jsonc relative to worker/ (`../container/Dockerfile`) resolve as they do there.
    """
    mirror = home / "frozen"
    shutil.rmtree(mirror, ignore_errors=True)
    mirror.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name != WORKER_DIR.name:
            (mirror / entry.name).symlink_to(entry)
    target = mirror / WORKER_DIR.name
    shutil.copytree(
        WORKER_DIR,
        target,
        ignore=shutil.ignore_patterns("node_modules", ".wrangler", "test", ".dev.vars*"),
    )
    (target / "node_modules").symlink_to(WORKER_DIR / "node_modules")
    return target


def http_status(url: str, timeout: float = 2) -> int | None:
    """The status `url` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL we built
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def health_phase(url: str) -> str | None:
    """The runtime's `phase` from its /healthz answer (given with 200 and with 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body.get("phase") if isinstance(body, dict) else None


class WorkerReviver:
    """Starts `wrangler dev` again when it exits, for both stacks.

    wrangler dev exits when its ProxyWorker sees a client abort a request ("Network connection
    lost", printed as an empty `✘ [ERROR]`; cloudflare/workers-sdk#15451, open). Browsers abort
    requests all the time, so without this a local run dies at random. It is the local harness,
    not the Worker: a deployed Worker has no ProxyWorker. In the containers mode the new
    wrangler reattaches to the container that still runs (the same container answers at once).
    Every revival is counted and announced with the log to read, so a Worker that really
    crashes shows up.
    """

    worker: Child | None
    progress: Callable[[str], None]

    def _init_reviver(self) -> None:
        # How often `wrangler dev` had to be started again.
        self.worker_revivals = 0
        self._revive_lock = threading.Lock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def _wait_worker(self) -> None:
        raise NotImplementedError

    def _stop_reviver(self, join_s: float) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(join_s)
            self._watchdog = None

    def revive_worker(self) -> bool:
        """Start `wrangler dev` again if it has exited; True when it had to."""
        with self._revive_lock:
            worker = self.worker
            if worker is None or worker.running() or self._stopping.is_set():
                return False
            code = worker.returncode()
            worker.stop(0)  # its workerd may still hold the port
            self.progress(
                f"the Worker (wrangler dev) exited with {code}; starting it again (wrangler dev "
                f"exits when a browser aborts a request: workers-sdk#15451); see {worker.log_path}"
            )
            worker.start()
            self._wait_worker()
            self.worker_revivals += 1
            return True

    def watch_worker(self, interval_s: float = 0.5) -> None:
        """Revive `wrangler dev` from a background thread until stop() (tests, benchmarks)."""

        def watch() -> None:
            while not self._stopping.wait(interval_s):
                try:
                    self.revive_worker()
                except DevstackError as exc:
                    self.progress(f"the Worker did not come back: {exc}")

        self._watchdog = threading.Thread(target=watch, name="worker-watchdog", daemon=True)
        self._watchdog.start()
