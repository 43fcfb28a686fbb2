"""Driving the two UIs through the Worker: OpenClaw's Control UI and the admin UI."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect


class Stack(Protocol):
    """What the UIs need of a stack: devstack.Stack (local backend) or ContainerStack."""

    secrets: dict[str, str]

    @property
    def url(self) -> str: ...


UUID_RE = re.compile(r"openclaw devices approve ([0-9a-f-]{36})")
TOKEN_FIELD = "Paste the token or type the password"
CHAT_FIELD = "Message Assistant"
PAIRING_HEADING = "Approve this browser"
UI_TIMEOUT_MS = 60_000


class ControlUi:
    """One browser profile (one OpenClaw device identity) using the Control UI."""

    def __init__(self, browser: Browser, stack: Stack) -> None:
        self.stack = stack
        self.context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page: Page = self.context.new_page()

    def open_with_token(self) -> None:
        self.page.goto(self.stack.url + "/")
        self.page.get_by_placeholder(TOKEN_FIELD).fill(self.stack.secrets["OPENCLAW_GATEWAY_TOKEN"])
        self.page.get_by_role("button", name="Connect").click()

    def reload(self) -> None:
        """Open the Control UI again; give it the token if it asks (it keeps the token only in
        the tab's session storage, and only once a connection succeeded)."""
        self.page.goto(self.stack.url + "/")
        token = self.page.get_by_placeholder(TOKEN_FIELD)
        settled = (
            token.or_(self.page.get_by_text(PAIRING_HEADING))
            .or_(self.page.get_by_placeholder(CHAT_FIELD))
            .first
        )
        expect(settled).to_be_visible(timeout=UI_TIMEOUT_MS)
        if token.is_visible():
            token.fill(self.stack.secrets["OPENCLAW_GATEWAY_TOKEN"])
            self.page.get_by_role("button", name="Connect").click()

    def wait_pairing_required(self) -> str:
        """Wait for OpenClaw's "Approve this browser" screen; return its pairing request id."""
        expect(self.page.get_by_text(PAIRING_HEADING)).to_be_visible(timeout=UI_TIMEOUT_MS)
        match = UUID_RE.search(self.page.inner_text("body"))
        assert match, "the pairing screen shows no request id"
        return match.group(1)

    def wait_connected(self) -> None:
        self._until_in_app(self.page.get_by_placeholder(CHAT_FIELD), "the chat", UI_TIMEOUT_MS)
        expect(self.page.get_by_role("status").filter(has_text="Connected").first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )

    def is_connected(self) -> bool:
        return self.page.get_by_placeholder(CHAT_FIELD).is_visible()

    def send(self, text: str) -> None:
        box = self.page.get_by_placeholder(CHAT_FIELD)
        box.fill(text)
        # The button, not Enter: a key pressed while the composer is still hydrating is lost.
        send = self.page.get_by_role("button", name="Send message")
        expect(send).to_be_enabled(timeout=UI_TIMEOUT_MS)
        send.click()
        expect(self.page.get_by_role("log").get_by_text(text).first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )

    def wait_text(self, text: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        expect(self.page.get_by_text(text).first).to_be_visible(timeout=timeout_ms)

    def wait_in_chat(self, text: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        """Wait for `text` in the conversation (see _until_in_app)."""
        self._until_in_app(self.page.get_by_text(text).first, repr(text), timeout_ms)

    def _until_in_app(self, target: Locator, what: str, timeout_ms: int) -> None:
        """Wait for `target` in the app view. Without a model provider, OpenClaw's Control UI
        may move on to its provider settings some time after it connected (the chat stays in
        the page, hidden); its "Back to app" button shows the chat again, so it is clicked
        whenever it shows."""
        back = self.page.get_by_role("button", name="Back to app")
        deadline = time.monotonic() + timeout_ms / 1000
        while not target.is_visible():
            assert time.monotonic() < deadline, f"{what} not shown in the Control UI"
            if back.is_visible():
                back.click()
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self.context.close()


@contextlib.contextmanager
def control_ui(
    browser: Browser, stack: Stack, timeout_ms: int | None = None
) -> Iterator[ControlUi]:
    """A Control UI browser profile for a test module, closed afterwards."""
    ui = ControlUi(browser, stack)
    if timeout_ms is not None:
        ui.page.set_default_timeout(timeout_ms)
    try:
        yield ui
    finally:
        ui.close()


class AdminUi:
    """The admin page, signed in with the local admin token through the sign-in form."""

    def __init__(self, browser: Browser, stack: Stack) -> None:
        self.stack = stack
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation

    def sign_in(self) -> None:
        self.page.goto(self.stack.url + "/_admin/")
        expect(self.page).to_have_url(re.compile(r"/_admin/login$"))
        self.page.fill("#token", self.stack.secrets["LOCAL_ADMIN_TOKEN"])
        self.page.click("#sign-in")
        expect(self.page.locator("#status-phase")).to_have_text("ready", timeout=UI_TIMEOUT_MS)

    def refresh(self) -> None:
        self.page.click("#refresh")

    def pending_row(self, request_id: str) -> Locator:
        return self.page.locator(f'#pending-list tr[data-request-id="{request_id}"]')

    def paired_row(self, device_id: str) -> Locator:
        return self.page.locator(f'#paired-list tr[data-device-id="{device_id}"]')

    def wait_pending(self, request_id: str) -> None:
        deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
        while self.pending_row(request_id).count() == 0:
            assert time.monotonic() < deadline, f"request {request_id} never listed as pending"
            self.refresh()
            self.page.wait_for_timeout(500)
        expect(self.pending_row(request_id)).to_be_visible()

    def click(self, row: Locator, label: str) -> None:
        row.get_by_role("button", name=re.compile(f"^{label} ")).click()

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)

    def close(self) -> None:
        self.context.close()


def admin_api(stack: Stack, path: str) -> dict[str, Any]:
    """GET /api/admin/<path> through the Worker with the local admin token (bearer)."""
    request = urllib.request.Request(  # noqa: S310 - loopback URL of the stack
        f"{stack.url}/api/admin/{path}",
        headers={
            "Authorization": f"Bearer {stack.secrets['LOCAL_ADMIN_TOKEN']}",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())
