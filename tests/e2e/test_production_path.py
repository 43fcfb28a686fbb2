"""The production Worker path: the `Sandbox` Durable Object runs the real image under podman.

One stack (devstack.containers: `wrangler dev` with the `containers` entry, the podman API, moto
as R2, miniflare's Browser Rendering on Debian's Chromium, our egress sidecar) serves the module.
Nothing on the Worker's side is replaced: requests go through `ContainerBackend` and
@cloudflare/containers into the container's ports, the container gets the env `containerEnv()`
builds, `sleepAfter` stops it with SIGTERM, the cron handler reads it through `getTcpPort`.
Access is the one stand-in (LOCAL_ADMIN_TOKEN on loopback, as in the local backend), and there is
no model key: chat ends with OpenClaw's own "no credential" answer, which is a full round trip
through the container's WebSocket. Tests run in file order and build on each other's state.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from playwright.sync_api import Browser, expect
from ui import AdminUi, ControlUi, admin_api

from devstack.containers import ContainersConfig, ContainerStack
from devstack.secrets import fresh_secrets

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

NO_KEY_ANSWER = "No route-compatible authentication source is configured"
RUNTIME_PHASES = {"restoring", "starting"}  # container/sandbox_runtime/supervisor.py
PAGE_TITLE = "e2e page for the container's browser"
SLEEP_AFTER_S = 60  # the smallest SLEEP_AFTER the Worker accepts
# Admin actions run OpenClaw's CLI inside the container (a Node start each); on a loaded 2-core
# box they take tens of seconds, so pages here wait longer than conftest's 30 s default.
SLOW_MS = 120_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ContainerStack]:
    running = ContainerStack(
        ContainersConfig(
            home=tmp_path_factory.mktemp("containers"),
            secrets=fresh_secrets(),
            freeze_worker=True,
            sleep_after=f"{SLEEP_AFTER_S // 60}m",
        )
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()
        # The logs outlive pytest's temp dir, for a failure to be read afterwards.
        shutil.copytree(running.logs_dir, artifacts / "production-path-logs", dirs_exist_ok=True)
        leftovers = running.containers()
        assert not leftovers, f"containers left behind: {[c['Names'] for c in leftovers]}"


@pytest.fixture(scope="module")
def device(browser: Browser, stack: ContainerStack) -> Iterator[ControlUi]:
    ui = ControlUi(browser, stack)
    ui.page.set_default_timeout(SLOW_MS)
    try:
        yield ui
    finally:
        ui.close()


@pytest.fixture(scope="module")
def shared() -> dict[str, str]:
    return {}


def page_of(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept": "text/html"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def boot_phases_until_ready(stack: ContainerStack, timeout: float = 180) -> list[str]:
    """Poll `/` as a browser would; the boot phases the loading page showed, in order."""
    phases: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, html = page_of(stack.url + "/")
        if status == 200:
            assert "openclaw" in html.lower(), html[:300]
            return phases
        match = re.search(r'id="boot-phase">Boot phase: <span class="phase">([^<]*)<', html)
        assert status == 503 and match, f"neither the loading page nor the Control UI: {html[:400]}"
        if not phases or phases[-1] != match.group(1):
            phases.append(match.group(1))
        time.sleep(0.5)
    raise AssertionError(f"the Control UI never came; phases seen: {phases}")


def wait_container(stack: ContainerStack, running: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (stack.app_container() is not None) != running:
        assert time.monotonic() < deadline, f"the container is still {'not ' if running else ''}up"
        time.sleep(1)


def worker_events(stack: ContainerStack, event: str) -> list[dict]:
    assert stack.worker is not None
    found = []
    for line in stack.worker.log_path.read_text(errors="replace").splitlines():
        start = line.find('{"level"')
        if start >= 0 and f'"event":"{event}"' in line:
            found.append(json.loads(line[start : line.rindex("}") + 1]))
    return found


# -------------------------------------------------------------------------- boot and pairing


def test_loading_page_shows_the_boot_phases_then_the_control_ui(
    browser: Browser, stack: ContainerStack, artifacts: Path
) -> None:
    page = browser.new_page()
    try:
        page.goto(stack.url + "/")  # the first request: it starts the container
        expect(page.locator("#boot-phase")).to_be_visible()
        first = page.locator("#boot-phase .phase").inner_text()
        page.screenshot(path=str(artifacts / "20-production-loading-page.png"))
    finally:
        page.close()
    phases = [first, *boot_phases_until_ready(stack)]
    # The Worker's own phase until the container runs, then the runtime's, read through the
    # control port (getTcpPort).
    assert phases[0] == "starting container", phases
    assert RUNTIME_PHASES & set(phases), phases
    assert stack.app_container() is not None


def test_pairing_through_the_admin_ui(
    browser: Browser, stack: ContainerStack, device: ControlUi, artifacts: Path
) -> None:
    admin = AdminUi(browser, stack)
    admin.page.set_default_timeout(SLOW_MS)
    try:
        admin.sign_in()  # LOCAL_ADMIN_TOKEN in place of Access; the status comes from the container
        device.open_with_token()
        request_id = device.wait_pairing_required()
        admin.wait_pending(request_id)
        admin.click(admin.pending_row(request_id), "Approve")
        expect(admin.page.locator("#message")).to_contain_text("Approved", timeout=SLOW_MS)
        # Open the Control UI again rather than wait on the page that asked: when the approval
        # takes long (a loaded box), OpenClaw's page may have moved on to its connection settings.
        device.reload()
        device.wait_connected()
        device.screenshot(artifacts / "21-production-control-ui-connected.png")
    finally:
        admin.close()
    assert [d["device_id"] for d in admin_api(stack, "devices")["paired"]]


def test_chat_through_the_containers_websocket(
    device: ControlUi, artifacts: Path, shared: dict[str, str]
) -> None:
    text = f"hello from the production path {time.monotonic_ns()}"
    device.send(text)
    device.wait_text(NO_KEY_ANSWER)
    device.screenshot(artifacts / "22-production-chat.png")
    shared["message"] = text


# ---------------------------------------------------------------------------- browser path


@pytest.fixture(scope="module")
def host_page() -> Iterator[str]:
    """A page on the host's loopback for Chromium (which runs on the host) to open."""
    body = f"<!doctype html><title>{PAGE_TITLE}</title><p>host</p>".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


# Runs inside the container, as the agent's browser tool would: CDP discovery on the bridge
# (127.0.0.1:9222), then a page opened and read over the bridge's browser socket. The bridge goes
# on to the Worker's /cdp (MOLT_CDP_UPSTREAM, the secret in a header), the Worker to Browser
# Rendering (here miniflare's, on Chromium).
INSIDE = """
import asyncio, json, sys, aiohttp
async def main(url):
    async with aiohttp.ClientSession() as http:
        async with http.get("http://127.0.0.1:9222/json/version") as r:
            ws_url = (await r.json())["webSocketDebuggerUrl"]
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            ids = iter(range(1, 100))
            async def call(method, params=None, session=None):
                n = next(ids)
                msg = {"id": n, "method": method, "params": params or {}}
                if session:
                    msg["sessionId"] = session
                await ws.send_str(json.dumps(msg))
                while True:
                    reply = json.loads((await ws.receive()).data)
                    if reply.get("id") == n:
                        return reply
            target = (await call("Target.createTarget", {"url": url}))["result"]["targetId"]
            attach = {"targetId": target, "flatten": True}
            session = (await call("Target.attachToTarget", attach))["result"]["sessionId"]
            for _ in range(50):
                value = await call("Runtime.evaluate", {"expression": "document.title"}, session)
                title = value["result"]["result"].get("value")
                if title:
                    break
                await asyncio.sleep(0.2)
            await call("Target.closeTarget", {"targetId": target})
            print(json.dumps({"title": title}))
asyncio.run(main(sys.argv[1]))
"""


def test_agent_browser_from_inside_the_container_reaches_chromium(
    stack: ContainerStack, host_page: str
) -> None:
    from devstack.images import podman

    name = stack.app_container()
    assert name is not None
    result = podman("exec", name, "python3", "-c", INSIDE, host_page, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"title": PAGE_TITLE}
    # The Worker upgraded the bridge's /cdp (the secret is checked before that, and the bridge
    # sends it only in a header) and took the session from Browser Rendering's binding.
    upgrades = [e for e in worker_events(stack, "request") if e.get("path") == "/cdp"]
    assert any(e.get("status") == 101 for e in upgrades), upgrades
    assert worker_events(stack, "browser session acquired")
    assert not worker_events(stack, "cdp refused")
    assert _handshake(stack.url.replace("http://", "ws://") + "/cdp", {}) == 401
    deadline = time.monotonic() + 10  # wrangler writes the Worker's log line a moment later
    while not worker_events(stack, "cdp refused"):
        assert time.monotonic() < deadline, "the refusal was not logged"
        time.sleep(0.2)


async def _cdp_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def _handshake(url: str, headers: dict[str, str]) -> int:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _cdp_status(url, headers)).result(60)


# ------------------------------------------------------------------ sleep, cron, restore


def test_sleep_after_stops_the_container_with_sigterm_and_a_final_snapshot(
    stack: ContainerStack, device: ControlUi
) -> None:
    from devstack.images import podman

    name = stack.app_container()
    assert name is not None
    device.page.goto("about:blank")  # no more requests: only sleepAfter stops it now
    wait_container(stack, running=False, timeout=SLEEP_AFTER_S + 90)
    log = stack.container_log(name)
    assert "stopping: gateway first, then a final snapshot" in log, log[-3000:]
    assert "final snapshot" in log.split("stopping: gateway first")[-1]
    inspected = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert inspected == "0", inspected


def test_cron_does_not_start_a_stopped_container(stack: ContainerStack) -> None:
    entry = stack.trigger_cron()
    assert entry["action"] == "not_running", entry
    time.sleep(2)
    assert stack.app_container() is None
    # @cloudflare/containers calls onStop when the object next runs (here: the cron's RPC), with
    # the exit code of the sleepAfter stop.
    stops = worker_events(stack, "container stopped")
    assert stops and stops[-1]["code"] == 0, stops


def test_next_request_boots_and_restores_pairing_and_conversation(
    stack: ContainerStack, device: ControlUi, shared: dict[str, str], artifacts: Path
) -> None:
    phases = boot_phases_until_ready(stack)
    assert "restoring" in phases or "starting" in phases, phases
    device.reload()
    device.wait_connected()  # still paired: the device list came back from the store
    device.wait_text(shared.get("message") or pytest.fail("the chat test did not finish"))
    device.screenshot(artifacts / "23-production-after-sleep.png")


def test_cron_reads_a_running_container_without_renewing_it(stack: ContainerStack) -> None:
    entry = stack.trigger_cron()
    # Through runningState + controlIfRunning (getTcpPort) to the runtime's /v1/status: the
    # state was just saved, so there is nothing the cron job should snapshot.
    assert entry["action"] in {"nothing_pending", "snapshot_recent"}, entry
    assert stack.app_container() is not None


# --------------------------------------------------------------------------- store outage


def test_a_container_that_cannot_reach_its_store_shows_the_cause(
    browser: Browser, stack: ContainerStack, artifacts: Path
) -> None:
    name = stack.app_container()
    assert name is not None
    assert stack.stop_container(name) == 0  # final snapshot while the store is still there
    stack.cut_store()
    deadline = time.monotonic() + 120
    html = ""
    while time.monotonic() < deadline:
        status, html = page_of(stack.url + "/")
        if 'id="boot-failure"' in html:
            break
        assert status == 503, html[:300]
        time.sleep(1)
    assert "exited with code 3" in html, html[:600]
    assert "Starting your agent" not in html
    page = browser.new_page()
    try:
        page.goto(stack.url + "/")
        expect(page.locator("#boot-failure")).to_contain_text("R2")
        page.screenshot(path=str(artifacts / "24-production-store-unreachable.png"))
    finally:
        page.close()


def test_no_secret_in_any_log(stack: ContainerStack) -> None:
    values = [v for v in stack.secrets.values() if v]
    for path in sorted(p for p in stack.logs_dir.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        leaked = [i for i, value in enumerate(values) if value in text]
        assert not leaked, f"{path} contains secret #{leaked} of the stack"
    for child in stack.children():
        assert not [v for v in values if v in " ".join(child.argv)], child.name
