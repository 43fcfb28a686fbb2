from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.infra.cf_api import CloudflareApiServer
from tests.infra.wrangler_ref import LocalRegistry, start_registry


@pytest.fixture(autouse=True)
def _no_ambient_pulumi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # The program reads config from the runtime first and the environment second; a developer's
    # shell with PULUMI_CONFIG* set must not change what the tests see.
    for key in list(os.environ):
        if key.startswith("PULUMI_CONFIG"):
            monkeypatch.delenv(key)


@pytest.fixture
def cf_api() -> Iterator[CloudflareApiServer]:
    """A fresh fake Cloudflare API on 127.0.0.1:<free port> (`.url`, `.api` is its state)."""
    with CloudflareApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on 127.0.0.1:<free port>, htpasswd auth, storage in a tmp dir."""
    registry = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield registry
    finally:
        registry.stop()


def _import_quietly() -> None:
    # pulumi_cloudflare warns about its own deprecated resource classes on import; importing it
    # once here keeps that noise (not ours to fix) out of every test report.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pulumi_cloudflare  # noqa: F401


_import_quietly()
