"""Run the pinned wrangler against the fake Cloudflare API and a real local OCI registry.

`run_deploy(server, registry, workdir, config)` writes `config` as the wrangler file, runs
`wrangler deploy` with the API, registry and docker adapter wired in, and returns what it sent
(`WranglerRun.requests`) and the API's end state (`CloudflareApi.end_state()`), so a test can
compare any deploy path with the reference one. `reference_config()` is the Worker from
`worker/` with its container, as `wrangler deploy` would take it.

The local registry is Debian's `docker-registry` (docker/distribution 2.8) on 127.0.0.1 with
htpasswd auth: the fake API hands out exactly those credentials from
`POST /containers/registries/{host}/credentials`, so a push only works if wrangler logged in
with what the API gave it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.images import podman_env
from tests.infra.cf_api import CloudflareApiServer, Recorded

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
CONTAINER = ROOT / "container"
WRANGLER = WORKER / "node_modules" / ".bin" / "wrangler"
DOCKER_SHIM = ROOT / "infra" / "docker_shim.py"
REGISTRY_BIN = Path("/usr/bin/docker-registry")
REFERENCE_SCRIPT = "moltworker-ref"  # the session's reference deploy (tests/infra/conftest.py)
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


def node_bin_dir() -> Path:
    tools = json.loads((ROOT / ".cache" / "tools.json").read_text())
    return Path(tools["node"]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bcrypt(password: str) -> str:
    # docker/distribution's htpasswd takes bcrypt only. Python 3.11's crypt (libxcrypt) makes
    # it without a new dependency; the module is deprecated (gone in 3.13), hence the filter.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt


@dataclass
class LocalRegistry:
    host: str  # 127.0.0.1:<port>, what CLOUDFLARE_CONTAINER_REGISTRY names
    username: str
    password: str
    root: Path
    registries_conf: Path  # CONTAINERS_REGISTRIES_CONF: plain http to this host
    process: subprocess.Popen[bytes]

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry serves for `repository` at a tag or digest, or None."""
        request = urllib.request.Request(
            f"http://{self.host}/v2/{repository}/manifests/{reference}", method="HEAD"
        )
        request.add_header("Accept", ", ".join(MANIFEST_TYPES))
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def stop(self) -> None:
        # Pushes tag the image `<host>/<account>/<repo>:<tag>` in the shared podman store;
        # those names die with this registry.
        env = podman_env()
        listed = subprocess.run(
            ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        names = [
            n
            for n in listed.stdout.split()
            if n.startswith(f"{self.host}/") and not n.endswith(":<none>")
        ]
        if names:
            subprocess.run(["podman", "rmi", *names], env=env, capture_output=True, check=False)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_registry(workdir: Path) -> LocalRegistry:
    if not REGISTRY_BIN.exists():
        raise RuntimeError(
            f"{REGISTRY_BIN} is missing: run `python3 scripts/bootstrap.py --containers` as "
            "root (it installs Debian's docker-registry)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host = f"127.0.0.1:{port}"
    username, password = "wrangler-push", base64.b32encode(os.urandom(15)).decode().lower()
    (workdir / "htpasswd").write_text(f"{username}:{_bcrypt(password)}\n")
    (workdir / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        f"http:\n  addr: {host}\n"
        f"auth:\n  htpasswd:\n    realm: local\n    path: {workdir / 'htpasswd'}\n"
    )
    registries_conf = workdir / "registries.conf"
    registries_conf.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(
        [str(REGISTRY_BIN), "serve", str(workdir / "config.yml")], stdout=log, stderr=log
    )
    registry = LocalRegistry(host, username, password, workdir, registries_conf, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(workdir / 'registry.log').read_text()}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for the credentials
                return registry
        except OSError:
            pass
        time.sleep(0.1)
    registry.stop()
    raise RuntimeError(f"docker-registry did not answer on {host} within 20 s")


def reference_config(
    name: str,
    *,
    image_vars: dict[str, str],
    instance_type: str = "standard-1",
    max_instances: int = 1,
    dockerfile: Path = CONTAINER / "Dockerfile",
    crons: list[str] | None = None,
) -> dict[str, Any]:
    """`worker/wrangler.jsonc` with absolute paths and the `containers` entry production has."""
    text = (WORKER / "wrangler.jsonc").read_text()
    config = json.loads(_strip_jsonc(text))
    config.pop("$schema", None)
    config.pop("dev", None)
    config["name"] = name
    config["main"] = str(WORKER / config["main"])
    config["assets"]["directory"] = str(WORKER / config["assets"]["directory"])
    config["containers"] = [
        {
            "class_name": "Sandbox",
            "image": str(dockerfile),
            "image_build_context": str(dockerfile.parent),
            "image_vars": image_vars,
            "instance_type": instance_type,
            "max_instances": max_instances,
        }
    ]
    for bucket in config.get("r2_buckets", []):
        bucket["bucket_name"] = f"{name}-data"
    if crons is not None:
        config["triggers"] = {"crons": crons}
    return config


def _strip_jsonc(text: str) -> str:
    """JSON from JSONC: drop // comments outside strings and trailing commas."""
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


@dataclass
class WranglerRun:
    returncode: int
    output: str
    requests: list[Recorded]
    end_state: dict[str, Any]
    outputs: list[dict[str, Any]]  # WRANGLER_OUTPUT_FILE_PATH entries
    seconds: float

    @property
    def mutating(self) -> list[Recorded]:
        return [r for r in self.requests if r.mutating]

    def lines(self) -> list[str]:
        return [r.line() for r in self.requests]


def wrangler_env(
    server: CloudflareApiServer, registry: LocalRegistry, workdir: Path, token: str | None = None
) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDFLARE_", "WRANGLER_", "CF_", "DOCKER_", "CONTAINERS_"))
    }
    env = podman_env(base)
    env.update(
        PATH=os.pathsep.join([str(node_bin_dir()), env.get("PATH", "")]),
        CLOUDFLARE_API_BASE_URL=server.url,
        CLOUDFLARE_API_TOKEN=token if token is not None else server.api.token,
        CLOUDFLARE_ACCOUNT_ID=server.api.account_id,
        CLOUDFLARE_CONTAINER_REGISTRY=registry.host,
        WRANGLER_DOCKER_BIN=str(DOCKER_SHIM),
        # Builds reach the package registries only with the host's network (notes).
        WRANGLER_CI_OVERRIDE_NETWORK_MODE_HOST="true",
        WRANGLER_SEND_METRICS="false",
        CI="true",
        CONTAINERS_REGISTRIES_CONF=str(registry.registries_conf),
        # podman keeps `docker login` credentials in $XDG_RUNTIME_DIR/containers/auth.json:
        # one per registry (as on a user's machine, they outlive a deploy), never the machine's.
        XDG_RUNTIME_DIR=str(registry.root / "run"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        WRANGLER_OUTPUT_FILE_PATH=str(workdir / "output.jsonl"),
    )
    return env


def run_deploy(
    server: CloudflareApiServer,
    registry: LocalRegistry,
    workdir: Path,
    config: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    token: str | None = None,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
    timeout: float = 600,
) -> WranglerRun:
    """`wrangler deploy` of `config` against the fake API; secrets through a 0600 file."""
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "config").mkdir(parents=True)
    (registry.root / "run").mkdir(mode=0o700, exist_ok=True)
    (workdir / "wrangler.json").write_text(json.dumps(config, indent=2))
    cmd = [str(WRANGLER), "deploy", "--config", str(workdir / "wrangler.json"), *extra_args]
    if secrets is not None:
        secrets_file = workdir / "secrets.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps(secrets))
        cmd += ["--secrets-file", str(secrets_file)]
    mark = server.api.mark()
    started = time.monotonic()
    result = subprocess.run(
        cmd,
        cwd=workdir,
        env={**wrangler_env(server, registry, workdir, token), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    output_file = workdir / "output.jsonl"
    outputs = (
        [json.loads(line) for line in output_file.read_text().splitlines() if line.strip()]
        if output_file.exists()
        else []
    )
    return WranglerRun(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        requests=server.api.since(mark),
        end_state=server.api.end_state(),
        outputs=outputs,
        seconds=seconds,
    )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def request_sequence(run: WranglerRun, server: CloudflareApiServer, script: str) -> list[str]:
    """`METHOD /path?query` of each request, with the account id, script name, version ids and
    the API prefix replaced by placeholders, so sequences compare across runs."""
    out = []
    for r in run.requests:
        line = r.line().rsplit(" -> ", 1)[0].replace("/client/v4", "", 1)
        line = line.replace(server.api.account_id, "{account}")
        line = re.sub(rf"/{re.escape(script)}(?=[/?]|$)", "/{script}", line)
        line = _UUID.sub("{version}", line)
        line = re.sub(r"/registries/[^/]+/", "/registries/{registry}/", line)
        line = re.sub(r"/r2/buckets/[^/?]+", "/r2/buckets/{bucket}", line)
        out.append(line)
    return out
