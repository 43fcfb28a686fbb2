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

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from journeys import cdp_handshake, in_own_loop, served_page, wait_for
from playwright.sync_api import Browser, expect
from sandbox_runtime.snapshots import SnapshotInfo
from ui import AdminUi, ControlUi, admin_api, control_ui

from devstack.containers import ContainersConfig, ContainerStack
from devstack.secrets import fresh_secrets

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

NO_KEY_ANSWER = "No route-compatible authentication source is configured"
RUNTIME_PHASES = {"restoring", "starting"}  # container/sandbox_runtime/supervisor.py
PAGE_TITLE = "e2e page for the container's browser"
SLEEP_AFTER_S = 60  # the smallest SLEEP_AFTER the Worker accepts
# The Worker's CRON_SNAPSHOT_AFTER (5 minutes when deployed), short enough for one store outage.
CRON_SNAPSHOT_AFTER_S = 30
# A file the tests write into the container's state dir (the image's MOLT_STATE_DIR).
STATE_NOTE = "/data/state/workspace/e2e-unsaved.md"
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
            cron_snapshot_after=f"{CRON_SNAPSHOT_AFTER_S}s",
        )
    )
    running.start()
    running.watch_worker()
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
    with control_ui(browser, stack, SLOW_MS) as ui:
        yield ui


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


def write_state_note(stack: ContainerStack, name: str, text: str) -> None:
    """Change the container's state as the agent would (as its user, inside the state dir)."""
    from devstack.images import podman

    code = "import os,sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
    code += "open(sys.argv[1], 'w').write(sys.argv[2])"
    podman("exec", name, "python3", "-c", code, STATE_NOTE, text)


def store_answers_inside(name: str, stack: ContainerStack) -> bool:
    """Whether an HTTP request from inside the container reaches the store (any answer)."""
    from devstack.images import podman

    code = "import sys, urllib.request, urllib.error\ntry:\n"
    code += "    urllib.request.urlopen(sys.argv[1], timeout=5)\n"
    code += "except urllib.error.HTTPError:\n    pass\n"
    found = podman("exec", name, "python3", "-c", code, stack.store_url + "/", check=False)
    return found.returncode == 0


def store_env(stack: ContainerStack) -> dict[str, str]:
    """What the container gets for its store, for reading the store from the test."""
    found = stack.worker_vars()
    names = ("R2_ENDPOINT", "R2_BUCKET", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY")
    return {"MOLT_STORE": "r2", "MOLT_SNAPSHOT_KEY": found["MOLT_SNAPSHOT_KEY"]} | {
        n: found[n] for n in names
    }


def newest_generation(stack: ContainerStack, into: Path) -> SnapshotInfo:
    """Restore the store's newest generation into `into`, as the next boot would."""
    from sandbox_runtime.snapshots import SnapshotManager, key_from_env, open_store

    env = store_env(stack)

    async def restore() -> SnapshotInfo:
        manager = SnapshotManager(store=open_store(env), key=key_from_env(env), state_dir=into)
        restored = await manager.restore()
        assert restored.snapshot is not None, "the store holds no snapshot"
        return restored.snapshot

    return in_own_loop(restore(), 120)


def manifests(stack: ContainerStack) -> set[str]:
    return {k for k in stack.store_keys() if k.startswith("snapshots/manifests/")}


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
        # No model key in this stack: the admin page names the setting that takes one.
        model_row = admin.page.locator("#status-model")
        expect(model_row).to_contain_text("no provider key")
        expect(model_row).to_contain_text("pulumi config set --secret anthropicApiKey")
        expect(model_row).to_contain_text("ANTHROPIC_API_KEY")
        device.open_with_token()
        request_id = device.wait_pairing_required()
        admin.wait_pending(request_id)
        admin.click(admin.pending_row(request_id), "Approve")
        expect(admin.page.locator("#message")).to_contain_text("Approved", timeout=SLOW_MS)
        # Open the Control UI again rather than wait on the page that asked: when the approval
        # takes long (a loaded box), OpenClaw's page may have moved on to its connection settings.
        device.reload()
        device.wait_connected()
        expect(device.page.get_by_text("No models available").first).to_be_visible()
        device.screenshot(artifacts / "21-production-control-ui-connected.png")
    finally:
        admin.close()
    assert [d["device_id"] for d in admin_api(stack, "devices")["paired"]]


def test_chat_through_the_containers_websocket(
    device: ControlUi, artifacts: Path, shared: dict[str, str]
) -> None:
    text = f"hello from the production path {time.monotonic_ns()}"
    device.send(text)
    # With no key at all, OpenClaw's own words: the turn ends without a reply.
    device.wait_in_chat(NO_KEY_ANSWER)
    device.screenshot(artifacts / "22-production-chat.png")
    shared["message"] = text


# ---------------------------------------------------------------------------- browser path


@pytest.fixture(scope="module")
def host_page() -> Iterator[str]:
    """A page on the host's loopback for Chromium (which runs on the host) to open."""
    body = f"<!doctype html><title>{PAGE_TITLE}</title><p>host</p>".encode()
    with served_page(body) as url:
        yield url


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
    assert cdp_handshake(stack.url.replace("http://", "ws://") + "/cdp", {}) == 401
    # wrangler writes the Worker's log line a moment later (seconds on a loaded box).
    wait_for(lambda: worker_events(stack, "cdp refused"), 60, "the refusal's log line")


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
    started_before = len(worker_events(stack, "container started"))
    entry = stack.trigger_cron()
    assert entry["action"] == "not_running", entry
    # @cloudflare/containers calls onStop when the object next runs (here: the cron's RPC), with
    # the exit code of the sleepAfter stop. Once that line is in, the object has run and
    # finished its turn: a start would have been logged (and the container listed) by then.
    stops = wait_for(lambda: worker_events(stack, "container stopped"), 60, "the onStop line")
    assert stops[-1]["code"] == 0, stops
    assert stack.app_container() is None
    assert len(worker_events(stack, "container started")) == started_before


def test_next_request_boots_and_restores_pairing_and_conversation(
    stack: ContainerStack, device: ControlUi, shared: dict[str, str], artifacts: Path
) -> None:
    phases = boot_phases_until_ready(stack)
    assert "restoring" in phases or "starting" in phases, phases
    device.reload()
    device.wait_connected()  # still paired: the device list came back from the store
    device.wait_in_chat(shared.get("message") or pytest.fail("the chat test did not finish"))
    device.screenshot(artifacts / "23-production-after-sleep.png")


def test_cron_reads_a_running_container_without_renewing_it(stack: ContainerStack) -> None:
    entry = stack.trigger_cron()
    # Through runningState + controlIfRunning (getTcpPort) to the runtime's /v1/status: the
    # state was just saved, so there is nothing the cron job should snapshot.
    assert entry["action"] in {"nothing_pending", "snapshot_recent"}, entry
    assert stack.app_container() is not None


def test_cron_snapshots_a_running_container_with_unsaved_changes(
    stack: ContainerStack, tmp_path: Path
) -> None:
    """The job the cron exists for: changes the runtime's own watcher could not save.

    While the store is out the watcher fails and backs off (1 s doubling to 60 s), so pending
    changes outlive CRON_SNAPSHOT_AFTER. The store comes back right after a retry that leaves
    at least 32 s to the next one; the cron run in that window finds the changes pending, the
    last snapshot old, and asks for a snapshot through the control port.
    """
    name = stack.app_container()
    assert name is not None
    before = manifests(stack)
    seen = len(stack.container_log(name))
    note = f"unsaved while the store was out {time.monotonic_ns()}\n"
    stack.cut_store()
    try:
        write_state_note(stack, name, note)

        def long_backoff() -> bool:
            waits = re.findall(
                r"snapshot failed, retrying in (\d+) s", stack.container_log(name)[seen:]
            )
            return bool(waits) and int(waits[-1]) >= 32

        # 1+2+4+8+16 s of backoff plus each failed attempt; the last snapshot is then older
        # than CRON_SNAPSHOT_AFTER_S too.
        wait_for(long_backoff, 240, "the watcher backing off 32 s", interval=0.25)
    finally:
        stack.restore_store()
    # Back for the host is not yet back for the container (its path runs through the sidecar):
    # the cron run waits until the container itself gets an answer from the store.
    wait_for(lambda: store_answers_inside(name, stack), 30, "the store answering the container")
    entry = stack.trigger_cron()
    assert entry["action"] == "snapshot_requested" and entry["upstream_status"] == 200, entry
    assert manifests(stack) - before, "no new generation in the store"
    newest = newest_generation(stack, tmp_path / "restored")
    assert newest.reason == "api", newest  # the control API's snapshot, not the watcher's
    assert (tmp_path / "restored" / STATE_NOTE.removeprefix("/data/state/")).read_text() == note
    assert "POST /v1/snapshots by cron" in stack.container_log(name)[seen:]
    assert stack.app_container() == name


# --------------------------------------------------------------------------- store outage


def test_a_dead_wrangler_dev_is_started_again_and_finds_the_running_container(
    stack: ContainerStack,
) -> None:
    """workers-sdk#15451 kills wrangler dev when a browser aborts a request; the stack starts it
    again and the new one reattaches to the container that kept running."""
    wrangler = stack.worker.proc if stack.worker is not None else None
    assert wrangler is not None
    name = stack.app_container()
    assert name is not None
    before = stack.worker_revivals
    wrangler.kill()
    wait_for(lambda: stack.worker_revivals > before, 120, "wrangler dev started again")
    status, html = page_of(stack.url + "/")
    assert status == 200 and "openclaw" in html.lower(), html[:300]
    assert stack.app_container() == name
    assert admin_api(stack, "status")["phase"] == "ready"


def test_a_container_that_cannot_reach_its_store_shows_the_cause(
    browser: Browser, stack: ContainerStack, artifacts: Path
) -> None:
    name = stack.app_container()
    assert name is not None
    # The store goes out while the container runs with unsaved changes; then it is stopped.
    stack.cut_store()
    write_state_note(stack, name, "lost with the container\n")
    assert stack.stop_container(name) == 4  # its final snapshot failed: changes lost
    log = stack.container_log(name)
    assert "final snapshot failed; the changes since snapshot" in log, log[-3000:]

    def failure_page() -> str | None:
        status, html = page_of(stack.url + "/")
        assert status == 503, html[:300]
        return html if 'id="boot-failure"' in html else None

    # Exit 4 holds no page: the next request boots a new container at once, whose restore finds
    # the store still out and exits 3, and that is the page (with its cause) browsers get.
    html = wait_for(failure_page, 180, "the boot-failure page", interval=1)
    assert "exited with code 3" in html, html[:600]
    assert "Starting your agent" not in html
    assert "boot stopped: the snapshot store is unreachable" in stack.container_log(name)
    lost = [e for e in worker_events(stack, "container stopped") if e["code"] == 4]
    assert lost and lost[-1]["level"] == "error" and lost[-1]["action"] == "changes_lost", lost
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
