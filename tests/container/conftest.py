"""The real sandbox image, built once per session (cached by podman under .cache/containers)."""

from __future__ import annotations

import pytest

from devstack.images import ImagesError, sandbox_image


@pytest.fixture(scope="session")
def image() -> str:
    try:
        return sandbox_image()
    except ImagesError as exc:
        pytest.fail(f"cannot build the sandbox image: {exc}")
