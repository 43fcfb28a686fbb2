"""The snapshot protocol: restore, snapshot, list, prune.

Store layout (every object sealed, see crypto.py):
    snapshots/HEAD                   the current generation plus the kept chain (newest first)
    snapshots/manifests/<id>         one per generation; id = <generation>-<unix ms>-<random>
    snapshots/blobs/<hmac>           1 MiB chunks of file content, shared between generations

A snapshot writes its new blobs (create-if-absent), then its manifest (create-if-absent), then
moves HEAD with a compare-and-swap on the etag it read. A writer whose HEAD is stale gets a
conflict and stops (it never overwrites); what it uploaded is unreferenced and pruned later.
Nothing is deleted except generations that fall off the kept chain and blobs no kept
generation uses, so an empty or damaged local state can never erase what the store holds.

    snapshots/kept/<id>              a pinned generation (kept.py): it stays on the chain past
                                     `keep` and the sweep spares it, until it is unkept

Pruning and concurrent writers: a blob may be referenced by a manifest the pruner has not seen
yet (another writer is between its uploads and its HEAD swap). The sweep therefore keeps every
manifest, and every blob, younger than `prune_grace_s` (default one hour, far longer than any
snapshot takes), keeps the blobs of every young manifest, and aborts if HEAD moved while it was
computing. The one case this cannot cover is a concurrent writer re-using an *old* blob that
just became unreferenced (content that disappeared from every kept generation and came back
within the sweep's few seconds); the deployment runs one writer, and restore's verification
would still refuse that generation and fall back rather than restore it wrong.

Where each step lives: restore.py (verify into staging, swap in whole), write.py (scan, blobs,
manifest, HEAD swap), prune.py (dropped generations and the sweep), kept.py (pinned
generations), watch.py (when to snapshot), view.py (the key layout and what this runtime last
read or wrote of HEAD). This class holds them together and serialises restore and snapshot
with one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

from .crypto import Cipher
from .errors import HeadConflict, SnapshotError
from .info import Refused, RestoreResult, SnapshotInfo, SnapshotStatus
from .kept import Kept, keep, list_kept, unkeep
from .prune import Pruner
from .restore import Restorer
from .scan import DEFAULT_EXCLUDES, DEFAULT_VOLATILE_TABLES, Excludes
from .store import Store
from .view import HEAD_KEY, StoreView
from .watch import Watcher
from .write import Writer

__all__ = [
    "Kept",
    "Refused",
    "RestoreResult",
    "SnapshotInfo",
    "SnapshotManager",
    "SnapshotStatus",
]


class SnapshotManager:
    def __init__(
        self,
        store: Store,
        key: bytes,
        state_dir: Path,
        keep: int = 30,
        exclude: Sequence[str] = DEFAULT_EXCLUDES,
        *,
        volatile_tables: Sequence[str] = DEFAULT_VOLATILE_TABLES,
        prune_grace_s: float = 3600.0,
        sweep_interval_s: float = 600.0,
    ) -> None:
        if keep < 1:
            raise SnapshotError(f"keep must be at least 1 generation, got {keep}")
        self.store = store
        self.state_dir = Path(state_dir)
        self.keep = keep
        self.excludes = Excludes(exclude)
        self.volatile_tables = tuple(volatile_tables)
        self._lock = asyncio.Lock()
        self._view = StoreView(store, Cipher(key))
        self._restorer = Restorer(self._view, self.state_dir, keep, self.volatile_tables)
        self._pruner = Pruner(self._view, prune_grace_s, sweep_interval_s)
        self._writer = Writer(self._view, self._pruner, keep, self.excludes, self.volatile_tables)
        self._watcher = Watcher(self.state_dir, self.excludes, self.snapshot, self._note_error)
        self._last_error: str | None = None

    async def restore(self) -> RestoreResult:
        """Bring the state dir to the newest verified generation.

        Raises StoreUnavailable when the store cannot be read and SnapshotError when no
        generation verifies; in both cases the local state dir is left exactly as it was.
        """
        async with self._lock:
            return await self._restorer.restore()

    async def extract(self, ident: str) -> int:
        """Verify one generation and swap it in for the state dir; returns its file count.

        For tools that read a chosen generation (`ops backup download`): HEAD and what this
        manager would snapshot next are left as they were.
        """
        async with self._lock:
            manifest = await self._view.fetch_manifest(ident)
            files, _ = await self._restorer.materialize(manifest)
            return files

    async def snapshot(self, reason: str) -> SnapshotInfo | None:
        """Record the state dir as a new generation; None when nothing changed.

        Raises HeadConflict when another writer moved HEAD (this manager then refuses further
        snapshots until restore() runs again), StoreUnavailable on store errors (HEAD has not
        moved; a later call retries), SnapshotError otherwise.
        """
        async with self._lock:
            if self._view.fenced:
                raise HeadConflict(self._view.fenced)
            if not self._view.restored:
                raise SnapshotError(
                    "snapshot() before restore(): restore first, so a fresh container never "
                    "records its empty state over the stored one"
                )
            try:
                info = await self._writer.commit(self.state_dir, reason)
            except SnapshotError as exc:
                self._last_error = str(exc)
                raise
            self._last_error = None
            return info

    async def import_tree(
        self, tree: Path, reason: str, *, force: bool = False
    ) -> SnapshotInfo | None:
        """Record `tree` (for example an unpacked backup archive) as the newest generation;
        `force` records it even when it equals the newest (HEAD moves: a stale writer is fenced)."""
        async with self._lock:
            return await self._writer.import_tree(tree, reason, force=force)

    async def sweep(self) -> int:
        """Delete stray manifests and unreferenced blobs past the grace period; returns count."""
        return await self._pruner.sweep()

    async def keep_generation(self, ident: str, reason: str) -> bool:
        """Pin a stored generation so pruning never removes it; False if it already was."""
        return await keep(self._view, ident, reason)

    async def unkeep_generation(self, ident: str) -> bool:
        """Unpin; the generation is then pruned like any other. False if it was not kept."""
        return await unkeep(self._view, ident)

    async def kept_generations(self) -> list[Kept]:
        """The pinned generations, newest first."""
        return await list_kept(self._view)

    async def list(self) -> list[SnapshotInfo]:
        """The kept generations, newest first (one store read)."""
        head_obj = await self.store.get(HEAD_KEY)
        if head_obj is None:
            return []
        head = self._view.open_head(head_obj)
        return [SnapshotInfo.from_summary(item) for item in head.chain]

    def status(self) -> SnapshotStatus:
        chain = self._view.chain
        last = chain[0] if chain else None
        return SnapshotStatus(
            last_id=last.id if last else None,
            last_at=datetime.fromisoformat(last.created_at) if last else None,
            pending=self._watcher.pending,
            last_error=self._view.fenced or self._last_error,
        )

    @contextlib.asynccontextmanager
    async def watch(
        self,
        debounce_s: float = 2.0,
        *,
        poll_s: float = 0.5,
        max_delay_s: float | None = None,
    ) -> AsyncIterator[None]:
        """Snapshot in the background shortly after the state dir changes.

        A snapshot starts after `debounce_s` without changes, or at most `max_delay_s` (default
        3 s, never less than debounce_s) after the first unsaved change under continuous writes,
        which bounds the loss window by roughly poll_s + max_delay_s + one snapshot's duration.
        While nothing changes the loop only stats local files: no store calls at all.
        """
        if max_delay_s is None:
            max_delay_s = max(3.0, debounce_s)
        if debounce_s < 0 or poll_s <= 0 or max_delay_s < debounce_s:
            raise SnapshotError(
                "watch() needs debounce_s >= 0, poll_s > 0, max_delay_s >= debounce_s"
            )
        stop = asyncio.Event()
        task = asyncio.create_task(self._watcher.run(stop, debounce_s, poll_s, max_delay_s))
        try:
            yield
        finally:
            stop.set()
            await task

    def _note_error(self, message: str) -> None:
        self._last_error = message
