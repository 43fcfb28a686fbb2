"""What the admin UI shows as the upgrade state: the generations kept for an upgrade.

`python -m ops upgrade` keeps the snapshot it takes before the switch ("before the upgrade to
openclaw X") and, on a rollback, what the failed version wrote ("written by openclaw X before
its rollback"). Both are markers in the store (snapshots/kept.py); the runtime reads them once
per boot, which is when an upgrade or a rollback reaches it (a new image starts a new
container). An unkeep done since then shows at the next boot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .snapshots import SnapshotError, SnapshotManager

log = logging.getLogger("upgrade")

UPGRADE_HINT = (
    "To move to another OpenClaw version: python -m ops upgrade --stack <stack> --to <version> "
    "(judged and rehearsed first, rolled back by itself if it does not come up)."
)
SHOWN = 5


class UpgradeState:
    def __init__(self) -> None:
        self._task: asyncio.Task[list[Any]] | None = None
        self._error: str | None = None

    def read(self, snapshots: SnapshotManager) -> None:
        """Start reading the kept generations (a list and one small read per marker)."""
        self._task = asyncio.create_task(snapshots.kept_generations())
        self._task.add_done_callback(self._log_failure)

    def _log_failure(self, task: asyncio.Task[list[Any]]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._error = str(exc) if isinstance(exc, SnapshotError) else repr(exc)
            log.warning("the kept snapshots could not be read: %s", self._error)

    def status(self) -> dict[str, Any]:
        task = self._task
        if task is None or not task.done():
            return {"state": "checking", "message": "reading the kept snapshots", "kept": []}
        if task.cancelled() or self._error is not None:
            return {
                "state": "unknown",
                "message": f"the kept snapshots could not be read: {self._error or 'cancelled'}",
                "kept": [],
            }
        kept = task.result()
        if not kept:
            return {"state": "none", "message": "No snapshot is kept. " + UPGRADE_HINT, "kept": []}
        newest = kept[0]
        what = f" ({newest.reason})" if newest.reason else ""
        message = (
            f"Snapshot {newest.id} is kept{what} since {newest.kept_at}; once this version has "
            f"proved itself: python -m ops backup unkeep {newest.id} --stack <stack>."
        )
        if len(kept) > 1:
            message += f" {len(kept) - 1} more kept: python -m ops backup list --stack <stack>."
        return {
            "state": "kept",
            "message": message,
            "kept": [{"id": k.id, "reason": k.reason, "kept_at": k.kept_at} for k in kept[:SHOWN]],
        }

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
