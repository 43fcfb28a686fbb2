from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.cf_api import CloudflareApi, CloudflareApiServer
from tests.infra.wrangler_ref import (
    CONTAINER,
    REFERENCE_SCRIPT,
    LocalRegistry,
    WranglerRun,
    reference_config,
    run_deploy,
    start_registry,
)

DOCKERIGNORED = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")  # container/.dockerignore


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


@pytest.fixture(scope="session")
def reference_deploy(
    local_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CloudflareApiServer, WranglerRun, WranglerRun]]:
    """Plain `wrangler deploy` of worker/ with the real sandbox image, twice, on a fresh fake
    account: the reference both test_wrangler_reference and test_deploy_rehearsal compare with.
    Built and pushed once per session (the full image's push is the slow part)."""
    from devstack.images import base_image, sandbox_image
    from infra.build import image_build_args

    # container/ as it is now: both deploys build the same context even while it is edited.
    context = tmp_path_factory.mktemp("context") / "container"
    shutil.copytree(CONTAINER, context, ignore=shutil.ignore_patterns(*DOCKERIGNORED))
    # The local sandbox build's arguments, so wrangler's build of the same Dockerfile is
    # answered from podman's layer cache (devstack.images builds it once).
    base = base_image()
    sandbox_image(base=base)
    version = (context / "openclaw.version").read_text().strip()
    image_vars = {**image_build_args(version), "BASE_IMAGE": base}
    api = CloudflareApi(registry_login=(local_registry.username, local_registry.password))
    server = CloudflareApiServer(api).start()
    work = tmp_path_factory.mktemp("wrangler-ref")
    config = reference_config(
        REFERENCE_SCRIPT, image_vars=image_vars, dockerfile=Path(context / "Dockerfile")
    )
    try:
        first = run_deploy(server, local_registry, work / "first", config)
        assert first.returncode == 0, first.output
        second = run_deploy(server, local_registry, work / "second", config)
        assert second.returncode == 0, second.output
        yield server, first, second
    finally:
        server.stop()


def _import_quietly() -> None:
    # pulumi_cloudflare warns about its own deprecated resource classes on import; importing it
    # once here keeps that noise (not ours to fix) out of every test report.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pulumi_cloudflare  # noqa: F401


_import_quietly()
