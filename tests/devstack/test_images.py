"""devstack.images' caching and its messages, without building anything (tests/container builds)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack import images


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record podman calls; every image 'exists' so nothing would be built."""
    seen: list[tuple[str, ...]] = []

    def fake(*args: str, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        seen.append(args)
        return subprocess.CompletedProcess(["podman", *args], 0, "", "")

    monkeypatch.setattr(images, "podman", fake)
    return seen


def test_an_unchanged_context_is_a_lookup_not_a_build(calls: list[tuple[str, ...]]) -> None:
    first = images.sandbox_image(base="localhost/base:x")
    second = images.sandbox_image(base="localhost/base:x")
    assert first == second
    assert all(call[:2] == ("image", "exists") for call in calls), calls


def test_the_tag_follows_the_context_and_the_base(
    calls: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = images.sandbox_image(base="localhost/base:x")
    assert images.sandbox_image(base="localhost/base:y") != ref
    context = tmp_path / "container"
    context.mkdir()
    (context / "openclaw.version").write_text("2026.9.6\n")
    (context / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(images, "CONTEXT", context)
    other = images.sandbox_image(base="localhost/base:x")
    (context / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    assert images.sandbox_image(base="localhost/base:x") not in (ref, other)


def test_the_base_key_covers_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    key = images.base_key()
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "procps"))
    assert images.base_key() != key


def test_podman_missing_or_not_root_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda _name: None)
    with pytest.raises(images.ImagesError, match=r"bootstrap\.py --containers"):
        images.require_podman()
    monkeypatch.setattr(images.shutil, "which", lambda _name: "/usr/bin/podman")
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(images.ImagesError, match="as root"):
        images.require_podman()


def test_podman_config_stays_inside_the_checkout() -> None:
    env = images.podman_env({})
    for name in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
        assert Path(env[name]).is_relative_to(images.CACHE)
    storage = Path(env["CONTAINERS_STORAGE_CONF"]).read_text()
    assert f'graphroot = "{images.CONTAINERS / "storage"}"' in storage
