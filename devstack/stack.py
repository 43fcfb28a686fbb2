"""Start, watch and stop the local stack: Chromium, the sandbox runtime, the Worker in workerd.

Everything listens on 127.0.0.1 only. Credentials reach the children through their environment
(the runtime) or a 0600 env file (`wrangler dev --env-file`), never through a command line.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .base import (
    WORKER_DIR,
    DevstackError,
    Tools,
    WorkerReviver,
    frozen_worker,
    health_phase,
    http_status,
    load_secrets,
    wait_child,
    wrangler_dev,
)
from .procs import Child, free_ports

CHROMIUM_START_S = 30.0
RUNTIME_READY_S = 240.0  # restore + config validation + gateway boot; ~20 s on a 2-core box
WORKER_READY_S = 90.0
RUNTIME_STOP_GRACE_S = 90.0  # the final snapshot happens inside this grace
WORKER_STOP_GRACE_S = 10.0

Progress = Callable[[str], None]


@dataclass
class LocalStackConfig:
    """Where the stack keeps its files and how it is reached.

    `home` holds the credentials file, the snapshot store (the state that survives restarts),
    logs and scratch directories. `worker_port` 0 picks a free port.
    """

    home: Path
    worker_port: int = 0
    # None: the local run's persistent credentials (devstack.secrets.local_secrets()).
    secrets: Mapping[str, str] | None = None
    # The snapshot store, i.e. the state that survives restarts; None: `home`/store.
    store_dir: Path | None = None
    # Model settings for the runtime (MODEL_PRIMARY, MODEL_BASE_URL, provider keys).
    model_env: Mapping[str, str] = field(default_factory=dict)
    snapshot_debounce_s: float = 2.0
    # `wrangler dev` reloads the Worker (dropping every WebSocket) when a file under worker/
    # changes. For a person editing the Worker that is the point; for tests and benchmarks,
    # which must not see a colleague's edit mid-run, the Worker runs from a copy taken at start.
    freeze_worker: bool = False
    # The runtime alone, without the Worker (for work on the runtime): the Control UI on the
    # gateway's own port, the agent's browser straight to Chromium.
    runtime_only: bool = False


@dataclass(frozen=True)
class Ports:
    worker: int
    gateway: int
    control: int
    cdp_bridge: int
    chromium: int
    inspector: int


class LocalStack(WorkerReviver):
    def __init__(self, config: LocalStackConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.home = config.home
        self.progress = progress or (lambda _message: None)
        self.tools = Tools.load()
        self.worker_env_path = self.home / "worker.env"
        self.store_dir = config.store_dir or self.home / "store"
        self.state_dir = self.home / "state"
        self.runtime_dir = self.home / "run"
        self.logs_dir = self.home / "logs"
        self.secrets: dict[str, str] = {}
        self.ports: Ports | None = None
        self.chromium: Child | None = None
        self.runtime: Child | None = None
        self.worker: Child | None = None
        self._profile_dir: Path | None = None
        self.chromium_ws = ""  # Chromium's browser WebSocket, read once it answers
        self._init_reviver()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._ports().worker}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().gateway}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().control}"

    @property
    def cdp_bridge_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().cdp_bridge}"

    @property
    def chromium_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().chromium}"

    def _ports(self) -> Ports:
        if self.ports is None:
            raise DevstackError("the stack has not been started")
        return self.ports

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start everything and wait until a browser can use the Worker; stop all on failure."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets = load_secrets(self.config.secrets)
        worker, *others = free_ports(6)
        if self.config.worker_port in others:
            others[others.index(self.config.worker_port)] = worker
        self.ports = Ports(self.config.worker_port or worker, *others)
        try:
            self._start_chromium()
            self._start_runtime()
            if not self.config.runtime_only:
                self._start_worker()
            self._wait_runtime()
            if not self.config.runtime_only:
                self._wait_worker()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The Worker first (no new traffic), then the runtime (final snapshot), then Chromium."""
        self._stop_reviver(WORKER_READY_S)
        if self.worker is not None and self.worker.running():
            self.progress("stopping the Worker")
            self.worker.stop(WORKER_STOP_GRACE_S)
        if self.runtime is not None and self.runtime.running():
            self.progress("stopping the sandbox runtime (final snapshot)")
            code = self.runtime.stop(RUNTIME_STOP_GRACE_S)
            from sandbox_runtime.supervisor import EXIT_CHANGES_LOST

            if code == EXIT_CHANGES_LOST:
                self.progress(
                    f"the runtime's final snapshot failed: the changes since its last snapshot "
                    f"are lost; see {self.runtime.log_path}"
                )
            elif code not in (0, None):
                self.progress(
                    f"the runtime exited with {code}; see {self.runtime.log_path} (the last "
                    "snapshot in the store is kept either way)"
                )
        if self.chromium is not None and self.chromium.running():
            self.chromium.stop(5)
        if self._profile_dir is not None:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None

    def restart_runtime(self) -> None:
        """Stop the runtime cleanly (final snapshot) and start it again on the same ports."""
        assert self.runtime is not None
        self.runtime.stop(RUNTIME_STOP_GRACE_S)
        self._start_runtime()
        self._wait_runtime()

    def crash_runtime(self) -> None:
        """SIGKILL the runtime and the gateway at once: a container that dies without warning."""
        assert self.runtime is not None
        self.runtime.kill_tree()

    def start_runtime_again(self) -> None:
        self._start_runtime()
        self._wait_runtime()

    def children(self) -> list[Child]:
        return [c for c in (self.chromium, self.runtime, self.worker) if c is not None]

    # ------------------------------------------------------------------ chromium

    def _start_chromium(self) -> None:
        ports = self._ports()
        self.progress(f"starting headless Chromium (CDP on 127.0.0.1:{ports.chromium})")
        self._profile_dir = Path(tempfile.mkdtemp(prefix="devstack-chromium-"))
        self.chromium = Child(
            "chromium",
            [
                str(self.tools.chromium),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={ports.chromium}",
                f"--user-data-dir={self._profile_dir}",
                "about:blank",
            ],
            env={"PATH": "/usr/bin:/bin", "HOME": str(self._profile_dir), "LANG": "C.UTF-8"},
            cwd=self._profile_dir,
            log_path=self.logs_dir / "chromium.log",
        )
        self.chromium.start()
        took = wait_child(
            lambda: _ok(f"{self.chromium_url}/json/version"),
            CHROMIUM_START_S,
            "Chromium's /json/version answering",
            self.chromium,
        )
        self.chromium_ws = _browser_socket(f"{self.chromium_url}/json/version")
        self.progress(f"Chromium ready ({took:.1f}s)")

    # ------------------------------------------------------------------ runtime

    def runtime_env(self) -> dict[str, str]:
        ports = self._ports()
        s = self.secrets
        env = {
            "PATH": f"{self.tools.node.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home / "home"),
            "LANG": "C.UTF-8",
            "MOLT_OPENCLAW_BIN": str(self.tools.openclaw),
            "OPENCLAW_GATEWAY_TOKEN": s["OPENCLAW_GATEWAY_TOKEN"],
            "MOLT_CONTROL_SECRET": s["MOLT_CONTROL_SECRET"],
            "MOLT_CDP_SECRET": s["MOLT_CDP_SECRET"],
            "MOLT_SNAPSHOT_KEY": s["MOLT_SNAPSHOT_KEY"],
            "MOLT_STORE": "dir",
            "MOLT_STORE_DIR": str(self.store_dir),
            "MOLT_STATE_DIR": str(self.state_dir),
            "MOLT_RUNTIME_DIR": str(self.runtime_dir),
            "MOLT_GATEWAY_PORT": str(ports.gateway),
            "MOLT_CONTROL_PORT": str(ports.control),
            "MOLT_CDP_PORT": str(ports.cdp_bridge),
            # The agent's browser goes the production way: bridge -> Worker /cdp -> Chromium.
            "MOLT_CDP_UPSTREAM": f"ws://127.0.0.1:{ports.worker}/cdp",
            # The Control UI is served through the Worker, so that is the origin the gateway
            # must accept for its WebSocket.
            "MOLT_PUBLIC_ORIGIN": self.url,
            "MOLT_SNAPSHOT_DEBOUNCE_S": str(self.config.snapshot_debounce_s),
        }
        if self.config.runtime_only:
            # No Worker: the bridge talks to Chromium's own browser endpoint, and browsers open
            # the gateway directly, which accepts its own origin.
            env["MOLT_CDP_UPSTREAM"] = self.chromium_ws or f"ws://127.0.0.1:{ports.chromium}"
            del env["MOLT_PUBLIC_ORIGIN"]
        env.update({name: value for name, value in self.config.model_env.items() if value})
        if "MODEL_PRIMARY" not in env:
            # A key without a model choice gets that provider's current default model.
            if env.get("ANTHROPIC_API_KEY"):
                env["MODEL_PRIMARY"] = "anthropic/claude-sonnet-4-5"
            elif env.get("OPENAI_API_KEY"):
                env["MODEL_PRIMARY"] = "openai/gpt-5"
        return env

    def _start_runtime(self) -> None:
        self.progress("starting the sandbox runtime (restore state, render config, boot gateway)")
        self.store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.runtime = Child(
            "sandbox runtime",
            [sys.executable, "-m", "sandbox_runtime"],
            env=self.runtime_env(),
            cwd=self.home,
            log_path=self.logs_dir / "runtime.log",
        )
        self.runtime.start()

    def _wait_runtime(self) -> None:
        assert self.runtime is not None
        took = wait_child(
            lambda: health_phase(f"{self.control_url}/healthz") == "ready",
            RUNTIME_READY_S,
            "the runtime reporting phase ready",
            self.runtime,
        )
        self.progress(f"sandbox runtime ready ({took:.1f}s)")

    # ------------------------------------------------------------------ worker

    def worker_vars(self) -> dict[str, str]:
        ports = self._ports()
        s = self.secrets
        return {
            "MOLT_LOCAL_BACKEND": "1",
            "LOCAL_GATEWAY_URL": self.gateway_url,
            "LOCAL_CONTROL_URL": self.control_url,
            "LOCAL_CDP_URL": f"http://127.0.0.1:{ports.chromium}",
            "LOCAL_ADMIN_TOKEN": s["LOCAL_ADMIN_TOKEN"],
            "MOLT_CONTROL_SECRET": s["MOLT_CONTROL_SECRET"],
            "MOLT_CDP_SECRET": s["MOLT_CDP_SECRET"],
        }

    def _start_worker(self) -> None:
        ports = self._ports()
        self.progress(f"starting the Worker in workerd (wrangler dev on 127.0.0.1:{ports.worker})")
        self.worker = wrangler_dev(
            self.tools,
            home=self.home,
            logs_dir=self.logs_dir,
            worker_dir=frozen_worker(self.home) if self.config.freeze_worker else WORKER_DIR,
            port=ports.worker,
            inspector_port=ports.inspector,
            worker_vars=self.worker_vars(),
        )
        self.worker.start()

    def _wait_worker(self) -> None:
        assert self.worker is not None
        took = wait_child(
            lambda: _ok(f"{self.url}/healthz"),
            WORKER_READY_S,
            "the Worker answering /healthz",
            self.worker,
        )
        self.progress(f"Worker ready ({took:.1f}s)")


def _browser_socket(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            found = json.loads(response.read()).get("webSocketDebuggerUrl", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) and found.startswith("ws://127.0.0.1:") else ""


def _ok(url: str) -> bool:
    return http_status(url) == 200


__all__ = ["DevstackError", "LocalStack", "LocalStackConfig", "Ports"]
