"""Running the built sandbox image with podman: one container per `Container`, always removed."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.images import podman_env

GATEWAY_PORT = 18789
CONTROL_PORT = 8788
RUNTIME_UID = 10001


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:2])} exited {result.returncode}: {result.stderr}"
        )
    return result


def secret_env(store: str = "dir") -> dict[str, str]:
    """A complete set of the runtime's required variables with fresh secrets."""
    env = {
        "OPENCLAW_GATEWAY_TOKEN": f"gwtok-{secrets.token_hex(20)}",
        "MOLT_CONTROL_SECRET": f"ctlsecret-{secrets.token_hex(20)}",
        "MOLT_CDP_SECRET": f"cdpsecret-{secrets.token_hex(20)}",
        "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "MOLT_STORE": store,
        "MOLT_SNAPSHOT_DEBOUNCE_S": "0.5",
    }
    if store == "dir":
        env["MOLT_STORE_DIR"] = "/store"
    return env


def store_volume(tmp: Path) -> Path:
    """A host directory for the dir store, writable by the runtime's uid inside the container."""
    store = tmp / "store"
    store.mkdir(parents=True, exist_ok=True)
    import os

    os.chown(store, RUNTIME_UID, RUNTIME_UID)
    return store


@dataclass
class Container:
    """One `podman run -d` of the image; env goes through a 0600 file, never the command line."""

    image: str
    env: dict[str, str]
    tmp: Path
    store: Path | None = None
    host_network: bool = False
    name: str = field(default_factory=lambda: f"molt-test-{secrets.token_hex(4)}")
    ports: dict[int, int] = field(default_factory=dict)

    def start(self) -> Container:
        env_file = self.tmp / f"{self.name}.env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        args = ["run", "-d", "--name", self.name, "--env-file", str(env_file)]
        # The health check's timer needs systemd, which this machine lacks; `healthcheck run`
        # still executes the image's HEALTHCHECK on demand.
        args += ["--health-interval=disable"]
        if self.store is not None:
            args += ["-v", f"{self.store}:/store"]
        if self.host_network:
            args += ["--network=host"]
        else:
            args += ["-p", f"127.0.0.1::{GATEWAY_PORT}", "-p", f"127.0.0.1::{CONTROL_PORT}"]
        podman(*args, self.image)
        env_file.unlink()
        if not self.host_network:
            # The bindings podman chose, from the container's config (there even if it exited).
            out = podman("inspect", self.name, "--format", "{{json .HostConfig.PortBindings}}")
            for spec, bindings in json.loads(out.stdout).items():
                if bindings:  # EXPOSEd ports that were not published are listed as null
                    self.ports[int(spec.split("/")[0])] = int(bindings[0]["HostPort"])
        return self

    def url(self, port: int) -> str:
        if self.host_network:
            return f"http://127.0.0.1:{port}"
        return f"http://127.0.0.1:{self.ports[port]}"

    def state(self) -> dict:
        out = podman("inspect", self.name, "--format", "{{json .State}}").stdout
        return json.loads(out)

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *cmd: str, user: str | None = None, check: bool = True) -> str:
        args = ["exec", *(["--user", user] if user else []), self.name, *cmd]
        return podman(*args, check=check).stdout

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until the control API's /healthz says phase "ready"."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.running():
                raise AssertionError(f"container exited early:\n{self.logs()[-4000:]}")
            status, body = get_json(f"{self.url(self.control_port)}/healthz")
            if status == 200 and body.get("phase") == "ready":
                return time.monotonic() - started
            time.sleep(0.25)
        raise AssertionError(f"not ready after {timeout}s:\n{self.logs()[-4000:]}")

    @property
    def control_port(self) -> int:
        return int(self.env.get("MOLT_CONTROL_PORT", CONTROL_PORT))

    @property
    def gateway_port(self) -> int:
        return int(self.env.get("MOLT_GATEWAY_PORT", GATEWAY_PORT))

    def wait_exit(self, timeout: float = 60) -> int:
        podman("wait", self.name, timeout=timeout)
        return int(self.state()["ExitCode"])

    def stop(self, grace: int = 30) -> tuple[int, float]:
        """`podman stop`: SIGTERM, SIGKILL after `grace` s. Returns exit code and seconds taken."""
        started = time.monotonic()
        podman("stop", "-t", str(grace), self.name, timeout=grace + 30)
        return int(self.state()["ExitCode"]), time.monotonic() - started

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}
