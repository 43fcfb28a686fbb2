"""The whole system on loopback, driven through the Worker in a real browser.

One stack (workerd + runtime + OpenClaw gateway + Chromium) serves the module; the tests run in
file order and build on each other's state (a paired browser, a chat history), the way a person
would use the system. The model provider is the only stand-in (model_standin.py).
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from admin_ui import AUDIT_TIMEOUT_MS, check_admin_ui
from journeys import cdp_handshake, served_page
from model_standin import API_KEY, REPLY_PREFIX, ModelStandIn
from playwright.sync_api import Browser, Playwright, expect
from ui import AdminUi, ControlUi, admin_api, control_ui

from devstack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PAGE_TITLE = "e2e local page"


def marker() -> str:
    return f"MARK-{secrets.token_hex(4)}"


def earlier(shared: dict[str, str], key: str) -> str:
    """State an earlier test of this module left; its absence means that test failed."""
    if key not in shared:
        pytest.fail(f"needs {key!r} from an earlier test in this module, which did not finish")
    return shared[key]


@pytest.fixture(scope="module")
def device_a(browser: Browser, stack: LocalStack) -> Iterator[ControlUi]:
    with control_ui(browser, stack) as ui:
        yield ui


@pytest.fixture(scope="module")
def admin(browser: Browser, stack: LocalStack) -> Iterator[AdminUi]:
    ui = AdminUi(browser, stack)
    ui.sign_in()
    try:
        yield ui
    finally:
        ui.close()


@pytest.fixture(scope="module")
def shared() -> dict[str, str]:
    """What one test leaves for the next (ids, markers)."""
    return {}


# ---------------------------------------------------------------------------------- pairing


def test_control_ui_waits_for_admin_approval(
    stack: LocalStack,
    device_a: ControlUi,
    admin: AdminUi,
    artifacts: Path,
    shared: dict[str, str],
) -> None:
    device_a.open_with_token()
    request_id = device_a.wait_pairing_required()
    assert not device_a.is_connected()
    device_a.screenshot(artifacts / "01-control-ui-pairing-required.png")

    admin.wait_pending(request_id)
    row = admin.pending_row(request_id)
    expect(row).to_contain_text("Linux")
    admin.screenshot(artifacts / "02-admin-pending-request.png")
    pending = {p["request_id"]: p for p in admin_api(stack, "devices")["pending"]}
    device_id = pending[request_id]["device_id"]

    admin.click(row, "Approve")
    expect(admin.page.locator("#message")).to_contain_text("Approved")
    expect(admin.paired_row(device_id)).to_be_visible()
    expect(admin.pending_row(request_id)).to_have_count(0)

    device_a.wait_connected()
    device_a.screenshot(artifacts / "03-control-ui-connected.png")
    shared["device_a"] = device_id


# --------------------------------------------------------------------------------- admin UI


@pytest.mark.timeout(AUDIT_TIMEOUT_MS // 1000 + 180)
def test_admin_ui_shows_the_security_audit_in_light_and_dark(
    browser: Browser, stack: LocalStack
) -> None:
    check_admin_ui(browser, stack)


# ------------------------------------------------------------------------------------- chat


def test_chat_round_trip_through_the_worker(
    device_a: ControlUi, standin: ModelStandIn, artifacts: Path, shared: dict[str, str]
) -> None:
    mark = marker()
    before = len(standin.requests)
    device_a.send(f"Please answer {mark}")
    device_a.wait_text(f"{REPLY_PREFIX}{mark}")
    device_a.screenshot(artifacts / "04-control-ui-chat-reply.png")
    answered = [r for r in standin.requests[before:] if mark in r.last_user_text]
    assert answered, f"the stand-in never saw {mark}: {standin.requests[before:]}"
    assert all(r.stream for r in answered), "OpenClaw streams chat replies"
    # MODEL_PRIMARY is anthropic/...: the runtime must have OpenClaw speak Anthropic Messages.
    assert {r.api for r in answered} == {"anthropic"}, answered
    assert {r.model for r in answered} >= {"claude-sonnet-4-5"}
    shared["mark_1"] = mark


# ------------------------------------------------------------------------------ browser path


@pytest.fixture(scope="module")
def local_page() -> Iterator[str]:
    """A page on loopback for the agent's browser to open."""
    body = f"<!doctype html><title>{PAGE_TITLE}</title><h1 id=h>served on loopback</h1>".encode()
    with served_page(body, "/page.html") as url:
        yield url


def test_agent_browser_path_reaches_chromium(
    playwright: Playwright, stack: LocalStack, local_page: str, artifacts: Path
) -> None:
    # What OpenClaw's browser tool does: attach over CDP to the bridge on 127.0.0.1 (discovery
    # through its /json/version/). The bridge goes on to the Worker's /cdp with the secret in a
    # header, the Worker to Chromium.
    browser = playwright.chromium.connect_over_cdp(stack.cdp_bridge_url, timeout=60_000)
    try:
        context = browser.contexts[0] if browser.contexts else browser.new_context()
        page = context.new_page()
        page.goto(local_page)
        assert page.title() == PAGE_TITLE
        assert page.inner_text("#h") == "served on loopback"
        png = page.screenshot()
        page.close()
    finally:
        browser.close()
    (artifacts / "05-agent-browser-screenshot.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 100 and height > 100


def test_worker_cdp_refuses_without_the_secret(stack: LocalStack) -> None:
    url = stack.url.replace("http://", "ws://") + "/cdp"
    assert cdp_handshake(url, {}) == 401
    assert cdp_handshake(url, {"Authorization": "Bearer " + "x" * 43}) == 401
    # The same request with the secret is upgraded: the refusals above are about the secret.
    good = {"Authorization": f"Bearer {stack.secrets['MOLT_CDP_SECRET']}"}
    assert cdp_handshake(url, good) == 101


# ----------------------------------------------------------------------------- persistence


def _wait_snapshot_after(stack: LocalStack, moment: datetime, timeout: float = 60.0) -> str:
    """Wait until a snapshot newer than `moment` exists and nothing is pending; its id."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = admin_api(stack, "status")["snapshot"]
        last_at = status.get("last_at")
        if last_at and not status.get("pending"):
            taken = datetime.fromisoformat(last_at.replace("Z", "+00:00"))
            if taken > moment:
                return status["last_id"]
        time.sleep(0.5)
    raise AssertionError(f"no snapshot after {moment.isoformat()}: {status}")


def test_state_survives_a_runtime_restart(
    stack: LocalStack, device_a: ControlUi, shared: dict[str, str]
) -> None:
    stack.restart_runtime()
    device_a.reload()
    # The paired device and the conversation both come back from the snapshot store.
    device_a.wait_connected()
    device_a.wait_text(f"{REPLY_PREFIX}{earlier(shared, 'mark_1')}")


def test_kill_9_loses_nothing_older_than_the_snapshot_window(
    stack: LocalStack, device_a: ControlUi, standin: ModelStandIn, shared: dict[str, str]
) -> None:
    mark = marker()
    device_a.send(f"Remember {mark}")
    device_a.wait_text(f"{REPLY_PREFIX}{mark}")
    answered = datetime.now().astimezone()
    # The documented window: MOLT_SNAPSHOT_DEBOUNCE_S of quiet, then the snapshot itself.
    _wait_snapshot_after(stack, answered)
    stack.crash_runtime()
    stack.start_runtime_again()
    device_a.reload()
    device_a.wait_connected()
    device_a.wait_text(f"{REPLY_PREFIX}{mark}")
    device_a.wait_text(f"{REPLY_PREFIX}{earlier(shared, 'mark_1')}")


# ------------------------------------------------------------------------- reject, revoke


def test_reject_and_revoke_take_effect(
    browser: Browser,
    stack: LocalStack,
    device_a: ControlUi,
    admin: AdminUi,
    artifacts: Path,
    shared: dict[str, str],
) -> None:
    device_b = ControlUi(browser, stack)
    try:
        device_b.open_with_token()
        request_b = device_b.wait_pairing_required()
        admin.page.reload()
        admin.wait_pending(request_b)
        admin.click(admin.pending_row(request_b), "Reject")
        expect(admin.page.locator("#message")).to_contain_text("Rejected")
        expect(admin.pending_row(request_b)).to_have_count(0)
        listed = admin_api(stack, "devices")
        assert request_b not in [p["request_id"] for p in listed["pending"]]
        # The rejected browser stays outside: asking again makes a new request, never a session.
        device_b.reload()
        again = device_b.wait_pairing_required()
        assert again != request_b
        assert not device_b.is_connected()
        paired = [d["device_id"] for d in admin_api(stack, "devices")["paired"]]
        assert paired == [earlier(shared, "device_a")]
    finally:
        device_b.close()

    device_id = earlier(shared, "device_a")
    admin.page.reload()
    expect(admin.paired_row(device_id)).to_be_visible()
    admin.click(admin.paired_row(device_id), "Revoke")
    expect(admin.page.locator("#message")).to_contain_text("Revoked")
    expect(admin.paired_row(device_id)).to_have_count(0)
    admin.screenshot(artifacts / "06-admin-after-reject-and-revoke.png")
    paired = [d["device_id"] for d in admin_api(stack, "devices")["paired"]]
    assert device_id not in paired
    # The revoked browser must pair again.
    device_a.reload()
    device_a.wait_pairing_required()
    device_a.screenshot(artifacts / "07-control-ui-after-revoke.png")


# -------------------------------------------------------------------------- no secret leaks


def test_no_secret_in_any_log_or_argv(stack: LocalStack) -> None:
    """After everything above, no credential is in a log file or a child's command line."""
    values = [v for v in stack.secrets.values() if v] + [API_KEY]
    for path in sorted(p for p in stack.logs_dir.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        leaked = [i for i, value in enumerate(values) if value in text]
        assert not leaked, f"{path} contains secret #{leaked} of the stack"
    for child in stack.children():
        argv = " ".join(child.argv)
        assert not [v for v in values if v in argv], f"{child.name}'s command line has a secret"
    worker_env = stack.worker_env_path
    assert worker_env.stat().st_mode & 0o077 == 0, "the Worker's env file must be 0600"


# ------------------------------------------------------------------- local harness resilience


def test_a_dead_wrangler_dev_is_started_again(stack: LocalStack) -> None:
    """wrangler dev exits on a client abort (workers-sdk#15451); the stack brings it back."""
    assert stack.worker is not None and stack.worker.proc is not None
    before = stack.worker_revivals
    old_pid = stack.worker.proc.pid
    stack.worker.proc.kill()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if stack.worker_revivals > before:
            break
        time.sleep(0.5)
    assert stack.worker_revivals == before + 1
    assert stack.worker.proc.pid != old_pid
    status = admin_api(stack, "status")
    assert status["phase"] == "ready"
