"""Without any model provider key the system still starts, and chat says what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from journeys import running_local_stack
from playwright.sync_api import Browser, expect
from ui import AdminUi, ControlUi

from devstack import LocalStack, LocalStackConfig
from devstack.__main__ import summary
from devstack.secrets import fresh_secrets

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """This module's own stack: no key, no model, no base URL (overrides conftest's)."""
    config = LocalStackConfig(
        home=tmp_path_factory.mktemp("devstack-nokey"),
        secrets=fresh_secrets(),
        freeze_worker=True,
    )
    with running_local_stack(config) as running:
        yield running


def test_starts_and_explains_that_chat_needs_a_key(
    browser: Browser, stack: LocalStack, artifacts: Path
) -> None:
    text = summary(stack, show_secrets=False)
    assert "chat needs a model provider key" in text
    assert "ANTHROPIC_API_KEY" in text and "OPENAI_API_KEY" in text

    admin = AdminUi(browser, stack)
    device = ControlUi(browser, stack)
    try:
        admin.sign_in()
        # The admin page names the setting that takes the key.
        model_row = admin.page.locator("#status-model")
        expect(model_row).to_contain_text("no provider key")
        expect(model_row).to_contain_text("pulumi config set --secret anthropicApiKey")
        expect(model_row).to_contain_text("ANTHROPIC_API_KEY")
        device.open_with_token()
        request_id = device.wait_pairing_required()
        admin.wait_pending(request_id)
        admin.click(admin.pending_row(request_id), "Approve")
        device.wait_connected()
        expect(device.page.get_by_text("No models available").first).to_be_visible()
        device.send("hello without a key")
        # OpenClaw's own words: the provider has no credential, so the turn ends without a reply.
        device.wait_text("No route-compatible authentication source is configured")
        device.screenshot(artifacts / "08-control-ui-no-model-key.png")
    finally:
        device.close()
        admin.close()
