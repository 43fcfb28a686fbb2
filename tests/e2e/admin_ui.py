"""The admin UI as a person sees it: signed in through the local form, in light and dark, with
OpenClaw's security audit and the running OpenClaw version on the page.

A check, not a test module: test_local_stack.py runs it on its stack, so the suite boots one
local stack for both (a stack of its own cost about 100 s of `make test`).

Screenshots go to .cache/e2e-screenshots/ (outside git): admin-light.png, admin-dark.png and
signin-dark.png.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import Browser, Page, expect

from devstack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".cache" / "e2e-screenshots"
# The audit starts once the gateway is ready and takes a Node start-up or more on a busy box;
# the page polls the status every 15 s.
AUDIT_TIMEOUT_MS = 240_000


def admin_status(stack: LocalStack) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL of the stack
        f"{stack.url}/api/admin/status",
        headers={
            "Authorization": f"Bearer {stack.secrets['LOCAL_ADMIN_TOKEN']}",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


@contextmanager
def open_admin(
    browser: Browser, stack: LocalStack, scheme: Literal["light", "dark"], shots: Path
) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(stack.url + "/_admin/")
        expect(page).to_have_url(re.compile(r"/_admin/login$"))
        expect(page.get_by_role("heading", name="Local admin sign-in")).to_be_visible()
        page.screenshot(path=str(shots / f"signin-{scheme}.png"))
        page.fill("#token", stack.secrets["LOCAL_ADMIN_TOKEN"])
        page.click("#sign-in")
        expect(page.locator("#status-phase")).to_have_text("ready", timeout=60_000)
        yield page
    finally:
        context.close()


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def check_admin_ui(browser: Browser, stack: LocalStack) -> None:
    """The security audit's findings, the pinned version and both colour schemes on the page."""
    shots = SHOTS
    shots.mkdir(parents=True, exist_ok=True)
    pinned = (ROOT / "container" / "openclaw.version").read_text().strip()
    with open_admin(browser, stack, "light", shots) as page:
        findings = page.locator("#security-findings li.finding")
        expect(findings.first).to_be_visible(timeout=AUDIT_TIMEOUT_MS)
        expect(page.locator("#openclaw-version")).to_have_text(pinned)
        expect(page.locator("#upgrade-state")).to_contain_text("No snapshot is kept")
        expect(page.locator("#upgrade-state")).to_contain_text("python -m ops upgrade")

        security = admin_status(stack)["security"]
        assert security["state"] in ("done", "running"), security
        assert security["findings"], "the local stack's config draws at least one finding"
        # Each finding the runtime reports is on the page with its severity, title and fix.
        page.click("#refresh")
        expect(findings).to_have_count(len(security["findings"]))
        for finding in security["findings"]:
            item = page.locator(f'#security-findings li[data-check-id="{finding["id"]}"]')
            expect(item).to_have_class(re.compile(rf"\b{finding['severity']}\b"))
            expect(item.locator(".title")).to_have_text(finding["title"])
            if finding["fix"]:
                expect(item.locator(".fix")).to_be_visible()
        counts = security["counts"]
        summary = page.locator("#security-summary")
        if counts["critical"]:
            expect(summary).to_have_text(f"{counts['critical']} critical")
        elif counts["warn"]:
            expect(summary).to_contain_text(f"{counts['warn']} warning")
        expect(page.locator("#security-state")).to_contain_text("openclaw security audit")

        text = page.inner_text("body")
        for name in ("LOCAL_ADMIN_TOKEN", "OPENCLAW_GATEWAY_TOKEN"):
            assert stack.secrets[name] not in text
        page.screenshot(path=str(shots / "admin-light.png"), full_page=True)
        light = background(page)

    with open_admin(browser, stack, "dark", shots) as page:
        expect(page.locator("#security-findings li.finding").first).to_be_visible()
        page.screenshot(path=str(shots / "admin-dark.png"), full_page=True)
        dark = background(page)
    assert light != dark, f"prefers-color-scheme changes nothing: {light}"
    assert (shots / "admin-light.png").stat().st_size > 10_000
