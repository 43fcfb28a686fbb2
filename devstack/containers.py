"""The production Worker path on this machine: `wrangler dev` runs the `Sandbox` Durable Object,
which starts the real sandbox image under podman (`python -m devstack --containers`).

Unlike the local backend (stack.py), nothing here is bypassed on the Worker's side: the request
goes through `ContainerBackend` and `@cloudflare/containers` into workerd's container support,
which starts the image with the env `containerEnv()` builds, waits for its ports, proxies HTTP and
WebSocket through them, and stops the container with SIGTERM when `sleepAfter` runs out. The
pieces around it:

- `podman system service` (behind devstack/docker_api.py, see there) stands in for Cloudflare's
  container runtime: workerd's Docker API client talks to it over a unix socket under `home`;
- moto (`python -m moto.server`, 127.0.0.1) for R2, through its S3 API;
- miniflare's own Browser Rendering, launching Debian's Chromium, for Browser Rendering;
- devstack.egress (the sidecar image) for workerd's egress sidecar (`cloudflare/proxy-everything`);
- `LOCAL_ADMIN_TOKEN` for Cloudflare Access, which cannot run here.

The container's loopback is the sidecar's network namespace, not the host's, so it cannot reach
the store or the Worker on 127.0.0.1. The sidecar relays 127.0.0.1:<port> inside the namespace to
the same port on the bridge's gateway address, where a host-side relay (bound to that address
only, reachable from this machine's containers, not from its loopback or other hosts' routes
unless they route the bridge subnet here) passes it on to 127.0.0.1:<port>. The container thus
sees the store and the Worker at the same URLs as the host: `R2_ENDPOINT=http://127.0.0.1:<moto>`
(the runtime takes plain http only for loopback) and `ws://127.0.0.1:<worker>/cdp`.

Everything this stack starts is removed when it stops, also after a failure, and left-overs of
an earlier run of the same home are removed before it starts: wrangler leaves the sidecar
behind, reattaches to a container that still runs, and podman 4.3 answers a container name
clash with 500, which workerd does not recover from. Container names carry a Worker name
derived from `home` (`workerd-moltworker-<hash>-Sandbox-...`), so two stacks never share one.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .base import (
    ROOT,
    WORKER_DIR,
    DevstackError,
    Tools,
    WorkerReviver,
    frozen_worker,
    http_status,
    load_secrets,
    wait_child,
    wrangler_dev,
)
from .procs import Child, free_ports

PODMAN_READY_S = 30.0
STORE_READY_S = 30.0
WORKER_READY_S = 180.0  # includes wrangler's image preparation (a cached build: seconds)
CONTAINER_STOP_GRACE_S = 60  # the final snapshot happens inside this grace
WORKER_STOP_GRACE_S = 15.0
# The app container's ports (container/Dockerfile, worker/src/env.ts) and the CDP bridge's:
# a relay port of the namespace must not take one of them.
CONTAINER_PORTS = frozenset({18789, 8788, 9222, 39001})
BRIDGE_NETWORK = "podman"  # what workerd's "bridge" network is under podman
CLASS_NAME = "Sandbox"
MINIFLARE_DIST = WORKER_DIR / "node_modules" / "miniflare" / "dist" / "src" / "index.js"
DOCKER_SHIM = ROOT / "infra" / "docker_shim.py"  # wrangler's `docker`, on podman
DOCKER_API = Path(__file__).resolve().parent / "docker_api.py"

Progress = Callable[[str], None]


@dataclass
class ContainersConfig:
    """Where the stack keeps its files and how the Worker is configured.

    `sleep_after` is the Worker's SLEEP_AFTER (at least 1m); `cron_snapshot_after` its
    CRON_SNAPSHOT_AFTER (None: the Worker's default, as deployed); `model_env` holds the model
    settings the Worker passes to the container (MODEL_PRIMARY, provider keys).
    """

    home: Path
    worker_port: int = 0
    secrets: Mapping[str, str] | None = None
    model_env: Mapping[str, str] = field(default_factory=dict)
    sleep_after: str = "10m"
    cron_snapshot_after: str | None = None
    freeze_worker: bool = False
    bucket: str = "moltworker-local"


@dataclass(frozen=True)
class Ports:
    worker: int
    inspector: int
    store: int


def bridge_gateway() -> str:
    """The gateway address of podman's default bridge (what `host.containers.internal` is)."""
    from .images import podman

    out = podman("network", "inspect", BRIDGE_NETWORK).stdout
    try:
        return json.loads(out)[0]["subnets"][0]["gateway"]
    except (ValueError, LookupError, TypeError):
        raise DevstackError(
            f"podman's `{BRIDGE_NETWORK}` network has no gateway address; check `podman network "
            f"inspect {BRIDGE_NETWORK}` (the default bridge is what workerd puts its sidecar on)"
        ) from None


def miniflare_browser_version() -> str:
    """The Chrome for Testing version miniflare's Browser Rendering looks for in its cache."""
    match = re.search(r'var BROWSER_VERSION = "([0-9.]+)"', MINIFLARE_DIST.read_text())
    if not match:
        raise DevstackError(
            f"{MINIFLARE_DIST} names no BROWSER_VERSION: miniflare changed how it finds Chrome; "
            "update devstack/containers.py's browser wrapper for the new version"
        )
    return match.group(1)


def strip_jsonc(text: str) -> str:
    """JSON from JSONC: comments dropped (strings kept intact), trailing commas refused later."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def worker_name_for(home: Path) -> str:
    return f"moltworker-{hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]}"


def containers_wrangler_config(
    worker_dir: Path,
    name: str,
    dockerfile: Path,
    sleep_after: str,
    cron_snapshot_after: str | None = None,
) -> dict:
    """worker/wrangler.jsonc with the `containers` entry the deploy path declares, for dev.

    Paths become absolute so the file can live outside worker/ (a generated file in the tree
    would reload `wrangler dev` and show up in git).
    """
    config = json.loads(strip_jsonc((worker_dir / "wrangler.jsonc").read_text()))
    config["name"] = name
    config["main"] = str(worker_dir / config["main"])
    config["assets"]["directory"] = str((worker_dir / config["assets"]["directory"]).resolve())
    config["$schema"] = str(worker_dir / "node_modules" / "wrangler" / "config-schema.json")
    config["dev"] = {**config.get("dev", {}), "enable_containers": True}
    config["containers"] = [
        {
            "class_name": CLASS_NAME,
            "image": str(dockerfile),
            "image_build_context": str(dockerfile.parent),
            "max_instances": 1,
        }
    ]
    config["vars"] = {**config.get("vars", {}), "SLEEP_AFTER": sleep_after}
    if cron_snapshot_after is not None:
        config["vars"]["CRON_SNAPSHOT_AFTER"] = cron_snapshot_after
    return config


class ContainerStack(WorkerReviver):
    def __init__(self, config: ContainersConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.home = config.home.resolve()
        self.progress = progress or (lambda _message: None)
        self.tools = Tools.load()
        self.logs_dir = self.home / "logs"
        self.worker_env_path = self.home / "worker.env"
        self.worker_name = worker_name_for(self.home)
        self.secrets: dict[str, str] = {}
        self.ports: Ports | None = None
        self.gateway_ip = ""
        self.podman_service: Child | None = None
        self.docker_api: Child | None = None
        self.store: Child | None = None
        self.relay: Child | None = None
        self.worker: Child | None = None
        self.sandbox_image = ""
        self.egress_image = ""
        self._init_reviver()
        self._podman_ok = False

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._ports().worker}"

    @property
    def store_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().store}"

    @property
    def podman_socket(self) -> Path:
        return self.home / "podman.sock"

    @property
    def docker_socket(self) -> Path:
        """What workerd talks to: podman's API through devstack/docker_api.py."""
        return self.home / "docker-api.sock"

    def _ports(self) -> Ports:
        if self.ports is None:
            raise DevstackError("the stack has not been started")
        return self.ports

    def children(self) -> list[Child]:
        found = (self.podman_service, self.docker_api, self.store, self.relay, self.worker)
        return [child for child in found if child is not None]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Images, podman service, store, relays, then the Worker; everything stops on failure."""
        from . import images

        try:
            images.require_podman()
        except images.ImagesError as exc:
            raise DevstackError(f"the containers mode needs podman: {exc}") from None
        self._podman_ok = True
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets = load_secrets(self.config.secrets)
        try:
            self._pick_ports()
            self.remove_containers()  # an earlier run of this home that did not stop cleanly
            self._build_images()
            self._start_podman_service()
            self._start_store()
            self._start_relay()
            self._start_worker()
            self._wait_worker()
        except images.ImagesError as exc:
            self.stop()
            raise DevstackError(str(exc)) from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The container first (SIGTERM: final snapshot), then the Worker, then the rest."""
        self._stop_reviver(WORKER_READY_S)
        if not self._podman_ok:
            return  # start() stopped before anything was started
        if self.podman_service is not None:
            name = self.app_container()
            if name:
                self.progress("stopping the sandbox container (final snapshot)")
                self._save_container_log(name)
                self.stop_container(name)
        if self.worker is not None and self.worker.running():
            self.progress("stopping the Worker")
            self.worker.stop(WORKER_STOP_GRACE_S)
        self.remove_containers()
        for child in (self.relay, self.store, self.docker_api, self.podman_service):
            if child is not None and child.running():
                child.stop(10)
        self._remove_images()

    def _remove_images(self) -> None:
        """This stack's relay image and the images wrangler built for it (by their label)."""
        from .images import podman

        labelled = podman(
            "images",
            "--quiet",
            "--filter",
            f"label=moltworker.devstack={self.worker_name}",
            check=False,
        ).stdout.split()
        for image in [*labelled, *([self.egress_image] if self.egress_image else [])]:
            podman("rmi", "--force", image, check=False)

    def _pick_ports(self) -> None:
        while True:
            worker, inspector, store = free_ports(3)
            if self.config.worker_port:
                worker = self.config.worker_port
            if not {worker, store} & CONTAINER_PORTS and worker not in (inspector, store):
                break
        self.ports = Ports(worker, inspector, store)

    # ------------------------------------------------------------------ containers

    def containers(self) -> list[dict]:
        """This stack's workerd containers (app and sidecar), running or not."""
        from .images import podman

        out = podman(
            "ps", "--all", "--format", "json", "--filter", f"name=^workerd-{self.worker_name}-"
        ).stdout
        return json.loads(out or "[]")

    def app_container(self, running_only: bool = True) -> str | None:
        for entry in self.containers():
            name = entry["Names"][0]
            if name.endswith("-proxy"):
                continue
            if running_only and entry.get("State") != "running":
                continue
            return name
        return None

    def stop_container(self, name: str, grace: int = CONTAINER_STOP_GRACE_S) -> int | None:
        """`podman stop` (SIGTERM, then SIGKILL after `grace`): what the platform does."""
        from .images import podman

        podman("stop", "--time", str(grace), name, check=False)
        inspected = podman("inspect", "--format", "{{.State.ExitCode}}", name, check=False)
        return int(inspected.stdout.strip()) if inspected.stdout.strip().isdigit() else None

    def container_log(self, name: str) -> str:
        from .images import podman

        result = podman("logs", name, check=False)
        return (result.stdout or "") + (result.stderr or "")

    def _save_container_log(self, name: str) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with (self.logs_dir / "container.log").open("a") as log:
            log.write(self.container_log(name))

    def remove_containers(self) -> None:
        from .images import podman

        for entry in self.containers():
            podman("rm", "--force", "--time", "0", entry["Names"][0], check=False)

    # ------------------------------------------------------------------ images

    def _build_images(self) -> None:
        from . import images
        from .egress import Relay, relay_image
        from .egress.sidecar import Address

        self.progress("preparing the images (sandbox, egress sidecar; cached after the first)")
        started = time.monotonic()
        base = images.base_image()
        self.sandbox_image = images.sandbox_image(base=base)
        self.gateway_ip = bridge_gateway()
        ports = self._ports()
        relays = [
            Relay(Address("127.0.0.1", port), Address(self.gateway_ip, port))
            for port in (ports.store, ports.worker)
        ]
        self.egress_image = relay_image(relays, base=base)
        # wrangler builds the image it runs; a FROM of the cached image is that build, seconds
        # long. The label keeps the image id this stack's own: wrangler removes other
        # `cloudflare-dev/*` tags of the id it built, which would be another stack's image.
        context = self.home / "image"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(
            f"FROM {self.sandbox_image}\nLABEL moltworker.devstack={self.worker_name}\n"
        )
        self.progress(f"images ready ({time.monotonic() - started:.1f}s): {self.sandbox_image}")

    # ------------------------------------------------------------------ services

    def _podman_env(self) -> dict[str, str]:
        from .images import podman_env

        # iptables (for the bridge network plugin) lives in /usr/sbin.
        env = podman_env({"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
        env["LANG"] = "C.UTF-8"
        env["HOME"] = str(self.home / "home")
        return env

    def _start_podman_service(self) -> None:
        from .images import require_podman

        self.podman_socket.unlink(missing_ok=True)
        self.podman_service = Child(
            "podman service",
            [require_podman(), "system", "service", "--time=0", f"unix://{self.podman_socket}"],
            env=self._podman_env(),
            cwd=self.home,
            log_path=self.logs_dir / "podman.log",
        )
        self.podman_service.start()
        wait_child(
            self._podman_answers, PODMAN_READY_S, "podman's API answering", self.podman_service
        )
        self.docker_api = Child(
            "docker api adapter",
            [sys.executable, str(DOCKER_API), str(self.docker_socket), str(self.podman_socket)],
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd=self.home,
            log_path=self.logs_dir / "docker-api.log",
        )
        self.docker_api.start()
        wait_child(
            lambda: _unix_get(self.docker_socket, "/_ping") == b"OK",
            PODMAN_READY_S,
            "the docker API adapter answering",
            self.docker_api,
        )

    def _podman_answers(self) -> bool:
        return _unix_get(self.podman_socket, "/_ping") == b"OK"

    def _start_store(self) -> None:
        ports = self._ports()
        self.progress(f"starting the S3 store (moto, 127.0.0.1:{ports.store})")
        self.store = Child(
            "s3 store (moto)",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports.store)],
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.home / "home"), "LANG": "C.UTF-8"},
            cwd=self.home,
            log_path=self.logs_dir / "store.log",
        )
        self.store.start()
        wait_child(
            lambda: http_status(self.store_url + "/") is not None,
            STORE_READY_S,
            "moto answering",
            self.store,
        )
        self._s3().create_bucket(Bucket=self.config.bucket)

    def _s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.store_url,
            region_name="us-east-1",  # moto: "auto" (R2's) cannot create buckets
            aws_access_key_id=self.secrets.get("R2_ACCESS_KEY_ID", "local-store-key"),
            aws_secret_access_key=self.secrets.get("R2_SECRET_ACCESS_KEY", "local-store-secret"),
        )

    def store_keys(self) -> list[str]:
        """Every object key in the bucket (the runtime's snapshots, encrypted)."""
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def _start_relay(self) -> None:
        ports = self._ports()
        self.relay = Child(
            "egress relay",
            [
                sys.executable,
                str(Path(__file__).resolve().parent / "egress" / "sidecar.py"),
                "relay",
                *(f"{self.gateway_ip}:{p}=127.0.0.1:{p}" for p in (ports.store, ports.worker)),
            ],
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd=self.home,
            log_path=self.logs_dir / "relay.log",
        )
        self.relay.start()
        wait_child(
            lambda: "egress: ready" in self.relay.log_tail(5) if self.relay else False,
            10,
            "the host-side relay listening",
            self.relay,
        )

    def cut_store(self) -> None:
        """Make the store unreachable from the container (the relay stops), like an R2 outage."""
        if self.relay is not None:
            self.relay.stop(5)

    def restore_store(self) -> None:
        self._start_relay()

    # ------------------------------------------------------------------ worker

    def worker_vars(self) -> dict[str, str]:
        s = self.secrets
        values = {
            "OPENCLAW_GATEWAY_TOKEN": s["OPENCLAW_GATEWAY_TOKEN"],
            "MOLT_CONTROL_SECRET": s["MOLT_CONTROL_SECRET"],
            "MOLT_CDP_SECRET": s["MOLT_CDP_SECRET"],
            "MOLT_SNAPSHOT_KEY": s["MOLT_SNAPSHOT_KEY"],
            "LOCAL_ADMIN_TOKEN": s["LOCAL_ADMIN_TOKEN"],
            "R2_ENDPOINT": self.store_url,
            "R2_BUCKET": self.config.bucket,
            "R2_ACCESS_KEY_ID": s.get("R2_ACCESS_KEY_ID", "local-store-key"),
            "R2_SECRET_ACCESS_KEY": s.get("R2_SECRET_ACCESS_KEY", "local-store-secret"),
        }
        values.update({name: value for name, value in self.config.model_env.items() if value})
        return values

    def _browser_cache(self) -> Path:
        """miniflare's Browser Rendering launches "Chrome for Testing" from wrangler's cache and
        would download it; a wrapper in its place runs Debian's Chromium instead."""
        cache = self.home / "xdg-cache"
        exe = (
            cache
            / ".wrangler"
            / "chrome"
            / f"linux-{miniflare_browser_version()}"
            / "chrome-linux64"
            / "chrome"
        )
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text(
            "#!/bin/sh\n"
            "# Written by devstack/containers.py: Debian's Chromium in place of Chrome for\n"
            "# Testing (no download); root needs --no-sandbox.\n"
            f'exec {self.tools.chromium} --no-sandbox --disable-gpu --disable-quic "$@"\n'
        )
        exe.chmod(0o755)
        return cache

    def _start_worker(self) -> None:
        ports = self._ports()
        worker_dir = frozen_worker(self.home) if self.config.freeze_worker else WORKER_DIR
        config = containers_wrangler_config(
            worker_dir,
            self.worker_name,
            self.home / "image" / "Dockerfile",
            self.config.sleep_after,
            self.config.cron_snapshot_after,
        )
        config_path = self.home / "wrangler.containers.json"
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        self.progress(
            f"starting the Worker with its container (wrangler dev on 127.0.0.1:{ports.worker})"
        )
        self.worker = wrangler_dev(
            self.tools,
            home=self.home,
            logs_dir=self.logs_dir,
            worker_dir=worker_dir,
            port=ports.worker,
            inspector_port=ports.inspector,
            worker_vars=self.worker_vars(),
            extra_args=["--config", str(config_path), "--test-scheduled"],
            extra_env=self._podman_env()
            | {
                "XDG_CACHE_HOME": str(self._browser_cache()),
                "WRANGLER_DOCKER_HOST": f"unix://{self.docker_socket}",
                "WRANGLER_DOCKER_BIN": str(DOCKER_SHIM),
                "MINIFLARE_CONTAINER_EGRESS_IMAGE": self.egress_image,
            },
        )
        self.worker.start()

    def _wait_worker(self) -> None:
        assert self.worker is not None
        took = wait_child(
            lambda: http_status(f"{self.url}/healthz") == 200,
            WORKER_READY_S,
            "the Worker answering /healthz",
            self.worker,
        )
        self.progress(f"Worker ready ({took:.1f}s); the container starts on the first request")

    def trigger_cron(self) -> dict:
        """Run the Worker's scheduled handler once (wrangler dev --test-scheduled); its log line."""
        assert self.worker is not None
        before = len(self.worker.log_path.read_text(errors="replace"))
        status = http_status(f"{self.url}/cdn-cgi/handler/scheduled", timeout=180)
        if status != 200:
            raise DevstackError(f"the scheduled handler answered {status}")
        deadline = time.monotonic() + 60  # wrangler writes the line seconds later under load
        while time.monotonic() < deadline:
            entry = cron_entry(self.worker.log_path.read_text(errors="replace")[before:])
            if entry is not None:
                return entry
            time.sleep(0.2)
        raise DevstackError(f"no cron log line in {self.worker.log_path}")


def cron_entry(log: str) -> dict | None:
    """The first `cron` line the Worker logged in `log` (wrangler dev's output), parsed."""
    for line in log.splitlines():
        # wrangler colours a warning's line: the JSON ends before the escape codes around it.
        start, end = line.find('{"level"'), line.rfind("}") + 1
        if start < 0 or '"event":"cron"' not in line:
            continue
        try:
            entry = json.loads(line[start:end])
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "cron":
            return entry
    return None


def _unix_get(path: Path, target: str) -> bytes | None:
    """The body of a GET over a unix socket (podman's API), or None when it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body if head.startswith(b"HTTP/1.1 200") else None


__all__ = ["ROOT", "ContainerStack", "ContainersConfig"]
