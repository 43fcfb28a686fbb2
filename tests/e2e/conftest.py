"""One local stack per test module (devstack, the same launcher `make dev` uses), a model
stand-in, and a Playwright Chromium (Debian's, via executable_path; nothing is downloaded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from journeys import running_local_stack
from model_standin import API_KEY, ModelStandIn
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from devstack import LocalStack, LocalStackConfig
from devstack.secrets import fresh_secrets

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM = json.loads((ROOT / ".cache" / "tools.json").read_text()).get(
    "chromium", "/usr/bin/chromium"
)


@pytest.fixture(scope="module")
def standin() -> Iterator[ModelStandIn]:
    server = ModelStandIn().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, standin: ModelStandIn) -> Iterator[LocalStack]:
    home = tmp_path_factory.mktemp("devstack")
    config = LocalStackConfig(
        home=home,
        secrets=fresh_secrets(),
        freeze_worker=True,
        snapshot_debounce_s=1.0,
        model_env={
            "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
            "MODEL_BASE_URL": standin.base_url,
            "ANTHROPIC_API_KEY": API_KEY,
        },
    )
    with running_local_stack(config) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Admin actions run OpenClaw's CLI (a Node process start each) on a 2-core box shared with
    # the gateway: allow seconds, not Playwright's default 5 s, for the page to catch up.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"]
    )
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
