"""The boot sequence and the lifetime of the sandbox.

render OpenClaw's config and start its validator (`ConfigCheck`, before this module is even
imported) -> restore state meanwhile -> wait for the validator's verdict -> start the gateway ->
snapshot on change -> on SIGTERM/SIGINT stop the gateway, take a final snapshot, exit 0. A restore
that cannot reach the store, or a config OpenClaw rejects, stops the boot before the gateway
starts: starting empty would let the next snapshot bury the real state. A final snapshot that
fails exits 4: the changes since the last snapshot are gone with the container, which is worth
an error, but the next boot has nothing to wait for (docs/architecture.md, "Exit codes").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from .auth import TokenVerifier
from .cdp_bridge import CdpBridge
from .control_api import make_app
from .devices import Devices
from .gateway import Gateway
from .logs import LogRing, Redactor
from .openclaw_cli import ConfigCheck, OpenClawCli, ValidatorFailed
from .security_audit import SecurityAudit
from .settings import Settings
from .skills import remove_workspace_copies
from .snapshots import SnapshotError, SnapshotInfo, SnapshotManager, Store, StoreUnavailable
from .upgrade_state import UpgradeState

log = logging.getLogger("supervisor")

Phase = Literal["restoring", "starting", "ready", "degraded", "stopping"]

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_RESTORE = 3
EXIT_CHANGES_LOST = 4


def runtime_version() -> str:
    try:
        return version("sandbox-runtime")
    except PackageNotFoundError:
        return "unknown"


def private_state_dir(state_dir: Path) -> None:
    """Owner-only: the state holds device tokens, transcripts and memories (OpenClaw's audit
    reports a readable state dir as `fs.state_dir.perms_readable`)."""
    try:
        state_dir.chmod(0o700)
    except OSError as exc:
        # A mount the runtime does not own: the boot goes on, the audit will name it.
        log.warning("could not make %s owner-only: %s", state_dir, exc)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        key: bytes,
        redactor: Redactor,
        ring: LogRing,
        check: ConfigCheck,
    ) -> None:
        self.settings = settings
        self._check = check
        self.redactor = redactor
        self.ring = ring
        self.cli = OpenClawCli(settings)
        self.gateway = Gateway(settings, redactor)
        self.devices = Devices(self.cli)
        self.audit = SecurityAudit(self.cli, redactor, settings.config_path)
        self.gateway.on_ready.append(lambda: self.audit.request("gateway ready"))
        self.snapshots: SnapshotManager | None = None
        self._store = store
        self._key = key
        self._phase: Phase = "restoring"
        self._stop = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()
        self._openclaw_version: str | None = None
        self.upgrade = UpgradeState()
        self._runners: list[web.AppRunner] = []

    @property
    def phase(self) -> Phase:
        if self._phase == "ready" and self.gateway.state != "ready":
            return "degraded"
        return self._phase

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            return await self._run()
        finally:
            self.upgrade.cancel()
            await self._check.cancel()
            for runner in reversed(self._runners):
                await runner.cleanup()

    async def _run(self) -> int:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        await self._serve_control()

        log.info("restoring state into %s", s.state_dir)
        self.snapshots = SnapshotManager(
            store=self._store,
            key=self._key,
            state_dir=s.state_dir,
            keep=s.snapshot_keep,
        )
        try:
            restored = await self.snapshots.restore()
        except StoreUnavailable as exc:
            log.error("boot stopped: the snapshot store is unreachable: %s", exc)
            return EXIT_RESTORE
        except SnapshotError as exc:
            log.error("boot stopped: the state could not be restored: %s", exc)
            return EXIT_RESTORE
        private_state_dir(s.state_dir)
        # Alongside the validator's verdict below, never in the boot's way.
        self.upgrade.read(self.snapshots)
        if restored.snapshot is None:
            log.info("the store holds no snapshot yet: first boot, local state kept")
        else:
            log.info(
                "restored snapshot %s (%d files, %d bytes)%s",
                restored.snapshot.id,
                restored.files,
                restored.bytes,
                f"; skipped {len(restored.refused)} unusable newer ones"
                if restored.fell_back
                else "",
            )
        if self._stop.is_set():
            return EXIT_OK

        self._phase = "starting"
        for removed in remove_workspace_copies(s.workspace_dir):
            log.info("removed %s: the shipped skill is now read from the runtime itself", removed)
        try:
            issues = await self._check.issues()
        except ValidatorFailed as exc:
            log.error("boot stopped: OpenClaw's config validator did not run: %s", exc)
            return EXIT_CONFIG
        self._openclaw_version = await self._check.openclaw_version()
        if issues:
            for issue in issues:
                log.error("OpenClaw rejected the rendered config: %s", issue)
            return EXIT_CONFIG
        if self._stop.is_set():
            return EXIT_OK
        await self._serve_cdp()

        gateway_task = asyncio.create_task(self.gateway.run())
        async with contextlib.AsyncExitStack() as watching:
            await self._until_stopped(gateway_task, watching)
        log.info("stopping: gateway first, then a final snapshot")
        await self.gateway.stop()
        await gateway_task
        return await self.final_snapshot()

    async def final_snapshot(self) -> int:
        """The last snapshot before the container goes: the exit code says whether it held."""
        assert self.snapshots is not None
        try:
            # Not take_snapshot(): with nothing changed it reads the store's list, and an
            # unchanged state must exit 0 even while the store is down.
            async with self._snapshot_lock:
                info = await self.snapshots.snapshot("shutdown")
        except SnapshotError as exc:
            # Only a real change reaches the store (an unchanged state is "no changes" without
            # a store call), so a failure here always loses something: say what.
            last = self.snapshots.status()
            since = (
                f"snapshot {last.last_id} ({last.last_at:%Y-%m-%d %H:%M:%S} UTC)"
                if (last.last_id and last.last_at)
                else "the container started (no snapshot was ever stored)"
            )
            log.error("final snapshot failed; the changes since %s are lost: %s", since, exc)
            return EXIT_CHANGES_LOST
        log.info("final snapshot: %s", info.id if info else "no changes")
        return EXIT_OK

    async def _until_stopped(
        self, gateway_task: asyncio.Task[None], watching: contextlib.AsyncExitStack
    ) -> None:
        assert self.snapshots is not None
        # Served from before the first ready, so that ready's request is taken at once; the
        # audit runs beside the gateway and never holds up readiness.
        await watching.enter_async_context(self.audit.running())
        try:
            ready_or_stop = asyncio.create_task(self.gateway.wait_ready(float("inf")))
            stop_wait = asyncio.create_task(self._stop.wait())
            await asyncio.wait(
                [ready_or_stop, stop_wait, gateway_task], return_when=asyncio.FIRST_COMPLETED
            )
            ready_or_stop.cancel()
            stop_wait.cancel()
            if self.gateway.state == "ready":
                self._phase = "ready"
                log.info("sandbox ready")
                await watching.enter_async_context(
                    self.snapshots.watch(self.settings.snapshot_debounce_s)
                )
            await self._stop.wait()
        finally:
            self._phase = "stopping"

    async def _serve_control(self) -> None:
        verifier = TokenVerifier(self.settings.env["MOLT_CONTROL_SECRET"])
        await self._serve(
            make_app(self, verifier), self.settings.listen_host, self.settings.control_port
        )
        log.info("control API on %s:%d", self.settings.listen_host, self.settings.control_port)

    async def _serve_cdp(self) -> None:
        bridge = CdpBridge(
            self.settings.cdp_upstream,
            self.settings.secret("MOLT_CDP_SECRET"),
            self.settings.cdp_port,
        )
        # Loopback only, whatever MOLT_BIND says: the bridge holds the upstream credential.
        await self._serve(bridge.app(), "127.0.0.1", self.settings.cdp_port)
        log.info("CDP bridge on 127.0.0.1:%d", self.settings.cdp_port)

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port, reuse_address=True).start()

    def snapshot_busy(self) -> bool:
        return self._snapshot_lock.locked()

    async def take_snapshot(self, reason: str) -> tuple[SnapshotInfo | None, bool]:
        """A snapshot now; (head, False) when nothing changed since the last one."""
        assert self.snapshots is not None
        async with self._snapshot_lock:
            info = await self.snapshots.snapshot(reason)
            if info is not None:
                return info, True
            kept = await self.snapshots.list()
            return (kept[0] if kept else None), False

    def status(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"last_id": None, "last_at": None, "age_s": None, "pending": False}
        if self.snapshots is not None:
            st = self.snapshots.status()
            snap["last_id"] = st.last_id
            snap["pending"] = st.pending
            if st.last_at is not None:
                snap["last_at"] = st.last_at.isoformat().replace("+00:00", "Z")
                snap["age_s"] = round((datetime.now(UTC) - st.last_at).total_seconds(), 1)
        return {
            "phase": self.phase,
            "gateway": {
                "state": self.gateway.state,
                "pid": self.gateway.pid,
                "uptime_s": self.gateway.uptime_s(),
                "restarts": self.gateway.restarts,
            },
            "snapshot": snap,
            # The admin UI tells the owner when chat cannot work and which setting takes the key.
            "model": self.settings.model_status(),
            # One display string: the admin UI shows it as is.
            "version": f"sandbox-runtime {runtime_version()}, "
            f"openclaw {self._openclaw_version or 'unknown'}",
            "openclaw_version": self._openclaw_version,
            # OpenClaw's own `security audit` of this config and state (security_audit.py).
            "security": self.audit.status(),
            # The snapshots kept by `ops upgrade` (upgrade_state.py).
            "upgrade": self.upgrade.status(),
        }
