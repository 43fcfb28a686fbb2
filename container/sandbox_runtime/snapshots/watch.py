"""Watch: poll the state dir's file metadata and snapshot after a quiet moment (or a bounded
delay under continuous writes); while nothing changes it makes no store calls at all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import HeadConflict
from .scan import Excludes, fingerprint

log = logging.getLogger(__name__)


class Watcher:
    def __init__(
        self,
        state_dir: Path,
        excludes: Excludes,
        snapshot: Callable[[str], Awaitable[object]],
        report_error: Callable[[str], None],
    ) -> None:
        self.state_dir = state_dir
        self.excludes = excludes
        self._snapshot = snapshot
        self._report_error = report_error
        self.pending = False  # changes seen that no snapshot holds yet

    async def run(
        self, stop: asyncio.Event, debounce_s: float, poll_s: float, max_delay_s: float
    ) -> None:
        seen = await self._fingerprint()
        first_dirty: float | None = time.monotonic()  # changes made before watch() started
        last_change = first_dirty
        retry_at = 0.0
        backoff = 1.0
        while not await _wait(stop, poll_s):
            now = time.monotonic()
            current = await self._fingerprint()
            if current != seen:
                seen = current
                last_change = now
                first_dirty = first_dirty or now
            self.pending = first_dirty is not None
            if first_dirty is None or now < retry_at:
                continue
            if now - last_change < debounce_s and now - first_dirty < max_delay_s:
                continue
            try:
                await self._snapshot("watch")
            except HeadConflict as exc:
                log.error("watch stops: %s", exc)
                return
            except Exception as exc:
                # Keep watching whatever went wrong: a watcher that died silently would turn
                # every later change into loss.
                log.error("snapshot failed, retrying in %.0f s: %s", backoff, exc)
                self._report_error(str(exc))
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, 60.0)
                continue
            first_dirty = None
            backoff = 1.0
            self.pending = False

    async def _fingerprint(self) -> frozenset[tuple[str, int, int, int]]:
        return await asyncio.to_thread(fingerprint, self.state_dir, self.excludes)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
