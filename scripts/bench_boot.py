"""Boot-to-ready benchmark for the sandbox runtime, against a bare OpenClaw gateway.

    .cache/venv/bin/python scripts/bench_boot.py [--runs 5] [--state-mb 100] [--no-image]
        [--runtime-src DIR]

Each round runs, one after the other (so a change in the machine's load hits every kind alike):
  (a) bare `openclaw gateway run` on the host, with the minimum config it needs (local mode, token
      auth), until its /readyz answers 200;
  (b) the supervisor (`python -m sandbox_runtime`) on the host with an empty store, until its
      /healthz says phase "ready" (config render + `openclaw config validate` + restore + gateway);
  (c) the same restoring a snapshot of ~--state-mb MB into an empty state dir (skipped with 0);
  (d) the sandbox image (`devstack.images.sandbox_image()`, built if needed): from `podman run`
      until the published control port's /healthz says "ready";
  (e) bare `openclaw gateway run` in the same image (from `podman run` to /readyz), so (d) - (e)
      is the supervisor's share and (e) - (a) the container's.
It prints the median, the spread (min-max) and every run, the per-round differences (b - a) and
(d - e), and where the supervised boots spent their time (from the runtime's log stamps). One
warm-up run of (a) and (b) is not counted: it fills Node's compile cache in /tmp, which every
later host run then shares. Every container starts with an empty /tmp, as on Cloudflare.
Everything runs on ephemeral ports in a temporary directory; nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "container"))
sys.path.insert(0, str(ROOT))

from sandbox_runtime.snapshots import SnapshotManager, open_store  # noqa: E402

TOOLS = json.loads((ROOT / ".cache" / "tools.json").read_text())
POLL_S = 0.05
IMAGE_GATEWAY_PORT = 18789
IMAGE_CONTROL_PORT = 8788
IMAGE_OPENCLAW = "/opt/openclaw/node_modules/.bin/openclaw"
RUNTIME_UID = 10001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_until(ready: Callable[[], bool], alive: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while not ready():
        if not alive():
            raise SystemExit(f"{what} exited before it was ready")
        if time.monotonic() - started > 300:
            raise SystemExit(f"{what} not ready after 300 s")
        time.sleep(POLL_S)
    return time.monotonic() - started


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by process `root` and all its descendants.

    Counts the live ones and the children they have reaped (the supervisor reaps the validator);
    a child reaped by a process that has itself exited since is lost, which does not happen
    before a boot is ready.
    """
    stats: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state (0), ppid (1), ..., utime (11), stime, cutime, cstime.
        stats[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _) in stats.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")


@dataclass
class Boot:
    wall_s: float
    cpu_s: float


def timed_boot(
    cmd: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path | None = None
) -> Boot:
    output = log.open("wb") if log else subprocess.DEVNULL
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - argument list
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=output, start_new_session=True
    )
    try:
        wait_until(ready, lambda: proc.poll() is None, cmd[0])
        return Boot(time.monotonic() - started, tree_cpu_s(proc.pid))
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


def bare_config(port: int, bind: str) -> str:
    token = {"source": "env", "provider": "default", "id": "OPENCLAW_GATEWAY_TOKEN"}
    gateway = {
        "mode": "local",
        "port": port,
        "bind": bind,
        "auth": {"mode": "token", "token": token},
    }
    return json.dumps({"gateway": gateway})


def bare_gateway(tmp: Path) -> Boot:
    port = free_port()
    state = tmp / f"bare-{port}"
    state.mkdir()
    config = state / "openclaw.json"
    config.write_text(bare_config(port, "loopback"))
    env = base_env(tmp) | {
        "OPENCLAW_STATE_DIR": str(state / "state"),
        "OPENCLAW_CONFIG_PATH": str(config),
    }
    cmd = [TOOLS["openclaw"], "gateway", "run", "--port", str(port), "--bind", "loopback"]
    return timed_boot(cmd, env, lambda: get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200)


# --runtime-src: a `container/` directory to run the supervisor from instead of this checkout's,
# e.g. an older commit's (`git archive <commit> container | tar -x -C /tmp/old`), for a
# before/after comparison in one run.
RUNTIME_SRC: list[str] = []


def runtime_env(tmp: Path, store: Path, key: str) -> dict[str, str]:
    run = tmp / f"run-{secrets.token_hex(4)}"
    extra = {"PYTHONPATH": os.pathsep.join(RUNTIME_SRC)} if RUNTIME_SRC else {}
    return (
        base_env(tmp)
        | extra
        | {
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
    )


@dataclass
class Phases:
    """Where supervised boots spent their time, read from the runtime's own log stamps."""

    restore: list[float] = field(default_factory=list)
    before_gateway: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)

    def add(self, log: Path, spawned: datetime) -> None:
        marks: dict[str, datetime] = {}
        for line in log.read_text(errors="replace").splitlines():
            for mark, text in (
                ("restore", "restoring state into"),
                ("restored", "restored snapshot"),
                ("restored", "the store holds no snapshot"),
                ("gateway", "starting gateway:"),
                ("ready", "sandbox ready"),
            ):
                if text in line and mark not in marks:
                    marks[mark] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        self.restore.append((marks["restored"] - marks["restore"]).total_seconds())
        self.before_gateway.append((marks["gateway"] - spawned).total_seconds())
        self.gateway.append((marks["ready"] - marks["gateway"]).total_seconds())


def supervised(tmp: Path, store: Path, key: str, phases: Phases) -> Boot:
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


class Image:
    """The sandbox image under podman, run as the deploy path runs it (published ports)."""

    def __init__(self, podman: str, ref: str, env: dict[str, str], tmp: Path) -> None:
        self.executable = podman
        self.ref = ref
        self.env = env
        self.tmp = tmp

    def podman(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(  # noqa: S603 - argument list
            [self.executable, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise SystemExit(f"podman {args[0]} exited {result.returncode}: {result.stderr}")
        return result.stdout

    def timed_run(self, run_args: list[str], port: int, ready: Callable[[int], bool]) -> Boot:
        name = f"molt-bench-{secrets.token_hex(4)}"
        started = time.monotonic()
        try:
            self.podman("run", "-d", "--name", name, "-p", f"127.0.0.1::{port}", *run_args)
            published = int(self.podman("port", name, f"{port}/tcp").strip().rsplit(":", 1)[1])
            try:
                wait_until(
                    lambda: ready(published), lambda: self.running(name), f"container {name}"
                )
            except SystemExit:
                logs = subprocess.run(  # noqa: S603 - argument list
                    [self.executable, "logs", name], env=self.env, capture_output=True, text=True
                )
                print((logs.stdout + logs.stderr)[-3000:], file=sys.stderr)
                raise
            took = time.monotonic() - started
            return Boot(took, self.cpu_s(name))
        finally:
            subprocess.run(  # noqa: S603 - argument list
                [self.executable, "rm", "-f", "-t", "5", name], env=self.env, capture_output=True
            )

    def cpu_s(self, name: str) -> float:
        """CPU seconds the container's processes used so far (its cgroup's account), or NaN."""
        path = self.podman("inspect", name, "--format", "{{.State.CgroupPath}}").strip()
        for account in (
            Path("/sys/fs/cgroup/cpuacct") / path.lstrip("/") / "cpuacct.usage",
            Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat",
        ):
            try:
                text = account.read_text()
            except OSError:
                continue
            if account.name == "cpuacct.usage":
                return int(text) / 1e9
            usage = dict(line.split() for line in text.splitlines())
            return int(usage["usage_usec"]) / 1e6
        return float("nan")

    def running(self, name: str) -> bool:
        return self.podman("inspect", name, "--format", "{{.State.Running}}").strip() == "true"

    def supervised(self, key: str) -> Boot:
        store = self.tmp / f"image-store-{secrets.token_hex(4)}"
        store.mkdir()
        os.chown(store, RUNTIME_UID, RUNTIME_UID)
        env_file = self.tmp / f"image-{secrets.token_hex(4)}.env"
        env_file.touch(mode=0o600)
        values = {
            "OPENCLAW_GATEWAY_TOKEN": secrets.token_urlsafe(32),
            "MOLT_CONTROL_SECRET": secrets.token_urlsafe(48),
            "MOLT_SNAPSHOT_KEY": key,
            "MOLT_STORE": "dir",
            "MOLT_STORE_DIR": "/store",
        }
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        args = ["--env-file", str(env_file), "-v", f"{store}:/store", self.ref]
        return self.timed_run(
            args,
            IMAGE_CONTROL_PORT,
            lambda port: get_json(f"http://127.0.0.1:{port}/healthz")[1].get("phase") == "ready",
        )

    def bare(self) -> Boot:
        config = self.tmp / f"image-bare-{secrets.token_hex(4)}.json"
        config.write_text(bare_config(IMAGE_GATEWAY_PORT, "lan"))
        config.chmod(0o644)
        env_file = self.tmp / f"image-bare-{secrets.token_hex(4)}.env"
        env_file.touch(mode=0o600)
        env_file.write_text(f"OPENCLAW_GATEWAY_TOKEN={secrets.token_urlsafe(32)}\n")
        args = [
            "--env-file",
            str(env_file),
            "-e",
            "OPENCLAW_CONFIG_PATH=/bench/openclaw.json",
            "-e",
            "OPENCLAW_STATE_DIR=/data/state",
            "-v",
            f"{config}:/bench/openclaw.json:ro",
            "--entrypoint",
            IMAGE_OPENCLAW,
            self.ref,
            "gateway",
            "run",
            "--port",
            str(IMAGE_GATEWAY_PORT),
            "--bind",
            "lan",
        ]
        return self.timed_run(
            args,
            IMAGE_GATEWAY_PORT,
            lambda port: get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200,
        )


def find_image(tmp: Path) -> Image | str:
    """The image (built if needed), or the reason it cannot be used here."""
    try:
        from devstack.images import ImagesError, podman_env, sandbox_image
    except ImportError as exc:
        return f"devstack.images is not available ({exc})"
    podman = shutil.which("podman")
    if podman is None:
        return "podman is not installed (the bootstrap installs it)"
    try:
        return Image(podman, sandbox_image(), podman_env(), tmp)
    except (ImagesError, OSError, subprocess.SubprocessError) as exc:
        return str(exc)


def report(name: str, samples: list[float], unit: str = "s") -> None:
    if not samples:
        return
    values = ", ".join(f"{s:.2f}" for s in samples)
    print(
        f"{name:<56} median {statistics.median(samples):6.2f} {unit}"
        f"   spread {min(samples):.2f}-{max(samples):.2f}   (runs: {values})",
        flush=True,
    )


def report_boots(name: str, boots: list[Boot]) -> None:
    report(name, [b.wall_s for b in boots])
    report("      CPU used to get there (all its processes)", [b.cpu_s for b in boots], "s CPU")


def report_difference(name: str, later: list[Boot], earlier: list[Boot]) -> None:
    pairs = list(zip(later, earlier, strict=True))
    report(name, [a.wall_s - b.wall_s for a, b in pairs])
    report("      in CPU", [a.cpu_s - b.cpu_s for a, b in pairs], "s CPU")


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description="Boot-to-ready benchmark for the sandbox runtime.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state-mb", type=int, default=100, help="0 skips the restore case")
    parser.add_argument("--no-image", action="store_true", help="skip the image cases")
    parser.add_argument(
        "--runtime-src", type=Path, help="run the supervisor from this container/ directory"
    )
    args = parser.parse_args()
    if args.runtime_src:
        if not (args.runtime_src / "sandbox_runtime" / "__main__.py").is_file():
            parser.error(f"--runtime-src {args.runtime_src} has no sandbox_runtime/__main__.py")
        RUNTIME_SRC.append(str(args.runtime_src.resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as raw:
        tmp = Path(raw)
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        full_store = tmp / "store-full"
        full_store.mkdir()
        if args.state_mb:
            seed_store(tmp, full_store, key, args.state_mb)
        image = "skipped (--no-image)" if args.no_image else find_image(tmp)
        print(
            f"openclaw {TOOLS['openclaw']}; {os.cpu_count()} CPUs; {args.runs} rounds; "
            f"supervisor from {RUNTIME_SRC[0] if RUNTIME_SRC else ROOT / 'container'}; "
            f"image: {image.ref if isinstance(image, Image) else image}; load average {load()}",
            flush=True,
        )
        bare_gateway(tmp)
        supervised(tmp, empty_store(tmp), key, Phases())
        bare: list[Boot] = []
        host: list[Boot] = []
        restored: list[Boot] = []
        in_image: list[Boot] = []
        image_bare: list[Boot] = []
        host_phases, restore_phases = Phases(), Phases()
        for _ in range(args.runs):
            bare.append(bare_gateway(tmp))
            host.append(supervised(tmp, empty_store(tmp), key, host_phases))
            if args.state_mb:
                restored.append(supervised(tmp, full_store, key, restore_phases))
            if isinstance(image, Image):
                in_image.append(image.supervised(key))
                image_bare.append(image.bare())
        report_boots("(a) bare openclaw gateway run -> /readyz", bare)
        report_boots("(b) supervisor on the host, empty store -> ready", host)
        report("      of which spawn -> gateway started", host_phases.before_gateway)
        report("      of which gateway started -> ready", host_phases.gateway)
        report_difference("    (b) - (a), per round", host, bare)
        if args.state_mb:
            report_boots(
                f"(c) supervisor on the host, restore {args.state_mb} MB -> ready", restored
            )
            report("      of which restore", restore_phases.restore)
            report("      of which spawn -> gateway started", restore_phases.before_gateway)
            report("      of which gateway started -> ready", restore_phases.gateway)
        if isinstance(image, Image):
            report_boots("(d) supervisor in the image: podman run -> ready", in_image)
            report_boots("(e) bare gateway in the image: podman run -> /readyz", image_bare)
            report_difference("    (d) - (e), per round", in_image, image_bare)
            report_difference("    (d) - (a), per round", in_image, bare)
        print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
