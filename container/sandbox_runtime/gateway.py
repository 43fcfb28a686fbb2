"""The OpenClaw gateway as a supervised child process.

Started with an argument list that carries no secret, watched through its own `/readyz` and
`/healthz` endpoints, restarted with capped exponential backoff when it dies or stops answering,
and stopped with SIGTERM then SIGKILL after a bounded grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Literal

import aiohttp

from .logs import Redactor
from .openclaw_cli import openclaw_env
from .settings import Settings

log = logging.getLogger("supervisor.gateway")
gateway_log = logging.getLogger("gateway")

State = Literal["stopped", "starting", "ready", "unhealthy", "backoff", "stopping"]

BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 30.0
STABLE_AFTER_S = 60.0  # a run this long after ready resets the backoff
READY_TIMEOUT_S = 180.0
# Until ready, /readyz is probed after every line the gateway prints (it logs "ready" as it
# turns ready) and at least this often.
READY_POLL_S = 0.1
PROBE_INTERVAL_S = 5.0
PROBE_FAILURES_BEFORE_RESTART = 6
STOP_GRACE_S = 20.0


def backoff_delay(failures: int) -> float:
    """Seconds to wait before the next start after `failures` consecutive failed runs."""
    return min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** max(0, min(failures - 1, 16)))


class Gateway:
    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        self.settings = settings
        self.redactor = redactor
        self.state: State = "stopped"
        self.restarts = 0
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._ready_at: float | None = None
        self._stopping = False
        self._ready_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._output = asyncio.Event()
        self._restart_requested = False
        self._http: aiohttp.ClientSession | None = None
        # Called each time a run turns ready (the first one and after every restart).
        self.on_ready: list[Callable[[], None]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    def uptime_s(self) -> float | None:
        if self._ready_at is None or self.state != "ready":
            return None
        return round(time.monotonic() - self._ready_at, 1)

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Keep the gateway running until stop() is called."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        failures = 0
        try:
            while not self._stopping:
                started = time.monotonic()
                became_ready = await self._run_once()
                if self._stopping:
                    break
                self.restarts += 1
                if self._restart_requested:
                    self._restart_requested = False
                    failures = 0
                    continue
                stable = became_ready and time.monotonic() - started >= STABLE_AFTER_S
                failures = 1 if stable else failures + 1
                delay = backoff_delay(failures)
                self.state = "backoff"
                log.warning(
                    "gateway exited; restart %d in %.0fs (consecutive failures: %d)",
                    self.restarts,
                    delay,
                    failures,
                )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self.state = "stopped"
            await self._http.close()

    async def restart(self) -> None:
        """Stop the current process; run() starts a new one at once (counted as a restart)."""
        if self._proc is None or self._proc.returncode is not None:
            self._wake.set()  # in backoff: cut the wait short
            return
        self._restart_requested = True
        await self._terminate()

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        self._stopping = True
        self._wake.set()
        self.state = "stopping"
        await self._terminate(grace)

    async def _run_once(self) -> bool:
        self.state = "starting"
        self._ready_event.clear()
        self._ready_at = None
        args = [
            self.settings.openclaw_bin,
            "gateway",
            "run",
            "--port",
            str(self.settings.gateway_port),
            "--bind",
            self.settings.bind,
        ]
        log.info("starting gateway: %s", " ".join(args[1:]))
        try:
            self._proc = await self._spawn(args)
        except OSError as exc:
            # Counted as a failed run: the supervisor stays up (and says why) and retries.
            log.error("cannot start %s: %s", args[0], exc)
            return False
        self.pid = self._proc.pid
        pump = asyncio.create_task(self._pump(self._proc))
        watch = asyncio.create_task(self._watch())
        try:
            returncode = await self._proc.wait()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump, 5)
        log.info("gateway (pid %s) exited with %s", self.pid, returncode)
        became_ready = self._ready_at is not None
        self.pid = None
        self._ready_at = None
        self._ready_event.clear()
        return became_ready

    async def _spawn(self, args: list[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=openclaw_env(self.settings),
            cwd=str(self.settings.runtime_dir),
            # Its own process group, so a stop reaches the helpers it spawns and a Ctrl-C in a
            # terminal reaches only the supervisor, which then stops the gateway in order.
            start_new_session=True,
            limit=1 << 20,
        )

    async def _watch(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self._output.clear()
            if await self._probe("/readyz"):
                break
            if time.monotonic() > deadline:
                log.error("gateway not ready after %.0fs; restarting it", READY_TIMEOUT_S)
                await self._terminate()
                return
            await self._next_output(READY_POLL_S)
        self._ready_at = time.monotonic()
        self.state = "ready"
        self._ready_event.set()
        log.info("gateway ready (pid %s)", self.pid)
        for callback in self.on_ready:
            callback()
        failures = 0
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            if await self._probe("/healthz"):
                failures = 0
                if self.state == "unhealthy":
                    self.state = "ready"
                continue
            failures += 1
            self.state = "unhealthy"
            if failures >= PROBE_FAILURES_BEFORE_RESTART:
                log.error("gateway failed %d health checks; restarting it", failures)
                await self._terminate()
                return

    async def _next_output(self, timeout: float) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
        # event is set, and the gateway prints its last lines as it exits, just when _run_once
        # cancels this watch.
        waiter = asyncio.ensure_future(self._output.wait())
        try:
            await asyncio.wait([waiter], timeout=timeout)
        finally:
            waiter.cancel()

    async def _probe(self, path: str) -> bool:
        assert self._http is not None
        try:
            async with self._http.get(self.base_url + path) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:
                # A line longer than the buffer: take what is there and go on.
                line = await proc.stdout.read(1 << 20)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                gateway_log.info("%s", self.redactor(text))
                self._output.set()

    async def _terminate(self, grace: float = STOP_GRACE_S) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._signal(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            log.warning("gateway did not stop within %.0fs; killing it", grace)
            self._signal(proc, signal.SIGKILL)
            await proc.wait()
        # Helpers the gateway spawned share its process group; none may outlive it.
        self._signal(proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
