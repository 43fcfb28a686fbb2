"""Write: scan a tree into entries (new chunks uploaded create-if-absent while the scan runs),
store the manifest create-if-absent, then move HEAD with a compare-and-swap on its etag."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .errors import HeadConflict, SnapshotError
from .info import SnapshotInfo
from .manifest import (
    CHUNK_SIZE,
    Entry,
    Head,
    Manifest,
    encode_head,
    encode_manifest,
    new_manifest_id,
    utc_now,
)
from .prune import Pruner
from .scan import Excludes, Previous, ScanStats, build_entries
from .view import HEAD_KEY, IN_FLIGHT, StoreView, blob_key, blobs_of, manifest_key

log = logging.getLogger(__name__)


class Writer:
    def __init__(
        self,
        view: StoreView,
        pruner: Pruner,
        keep: int,
        excludes: Excludes,
        volatile_tables: Sequence[str],
    ) -> None:
        self.view = view
        self.pruner = pruner
        self.keep = keep
        self.excludes = excludes
        self.volatile_tables = tuple(volatile_tables)
        # One dedicated thread reads the tree; it blocks on uploads that run on the event loop,
        # so it must not compete with them for the default executor's threads.
        self._scan_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="molt-snapshot")

    async def import_tree(
        self, tree: Path, reason: str, *, force: bool = False
    ) -> SnapshotInfo | None:
        """Record `tree` on top of whatever HEAD names now (no restore of it needed).

        `force` records it even when it equals the newest generation: HEAD then moves, so a
        writer that read HEAD before (a container about to be replaced) meets 412 and stops.
        """
        view = self.view
        head_obj = await view.store.get(HEAD_KEY)
        if head_obj is None:
            view.adopt(None, None, ())
        else:
            try:
                head = view.open_head(head_obj)
            except SnapshotError as exc:
                raise SnapshotError(
                    f"the store's HEAD is unreadable ({exc}); boot the runtime once (its "
                    "restore falls back to the last good generation) before importing"
                ) from exc
            manifest = await view.fetch_manifest(head.manifest)
            view.adopt(head_obj.etag, manifest, head.chain)
        return await self.commit(tree, reason, allow_empty=True, force=force)

    async def commit(
        self, root: Path, reason: str, *, allow_empty: bool = False, force: bool = False
    ) -> SnapshotInfo | None:
        """Record `root` as the next generation; None when it equals the newest one."""
        view = self.view
        loop = asyncio.get_running_loop()
        uploaded: set[str] = set()
        in_flight: list[Future[None]] = []

        def sink(ident: str, data: bytes) -> None:  # runs in the scan thread
            if ident in uploaded or ident in view.known:
                return
            sealed = view.cipher.seal("blob", ident, data)
            in_flight.append(asyncio.run_coroutine_threadsafe(self._put_blob(ident, sealed), loop))
            uploaded.add(ident)
            if len(in_flight) >= IN_FLIGHT:
                in_flight.pop(0).result()

        last = view.last
        previous = Previous(
            {entry.path: entry for entry in last.entries} if last else {}, dict(view.digests)
        )

        def scan() -> tuple[list[Entry], ScanStats]:
            try:
                found = build_entries(
                    root, self.excludes, view.cipher.blob_id, sink, previous, self.volatile_tables
                )
                for future in in_flight:
                    future.result()
            finally:
                for future in in_flight:
                    future.cancel()
            return found

        try:
            entries, stats = await loop.run_in_executor(self._scan_pool, scan)
        except OSError as exc:
            raise SnapshotError(f"reading {root} failed: {exc}") from exc
        files = stats.files
        if last is not None and tuple(entries) == last.entries and not force:
            view.digests = stats.digests
            return None
        if last is None and not entries:
            return None
        if files == 0 and last is not None and last.summary.files and not allow_empty:
            raise SnapshotError(
                f"{root} holds no files but generation {last.id} has {last.summary.files}; "
                "refusing to record an empty generation (a lost or unmounted state dir must "
                "not push the real state toward pruning)"
            )
        now = utc_now()
        generation = (view.chain[0].generation if view.chain else 0) + 1
        manifest = Manifest(
            id=new_manifest_id(generation, now),
            generation=generation,
            parent=view.chain[0].id if view.chain else None,
            created_at=now.isoformat(),
            reason=reason[:200],
            chunk_size=CHUNK_SIZE,
            entries=tuple(entries),
        )
        sealed = view.cipher.seal("manifest", manifest.id, encode_manifest(manifest))
        if not await view.store.put_if_absent(manifest_key(manifest.id), sealed):
            raise SnapshotError(f"manifest {manifest.id} already exists; retry the snapshot")
        chain, dropped = await self.pruner.retain((manifest.summary, *view.chain), self.keep)
        head = Head(manifest.id, generation, chain)
        sealed_head = view.cipher.seal("head", "HEAD", encode_head(head))
        try:
            etag = await view.store.put_if_match(HEAD_KEY, sealed_head, view.head_etag)
        except HeadConflict as exc:
            view.fenced = (
                f"another writer moved HEAD since this runtime read it ({exc}); snapshot "
                f"{manifest.id} was not recorded and stays orphaned until pruned. Restart the "
                "runtime so it restores the newer state instead of overwriting it."
            )
            raise HeadConflict(view.fenced) from exc
        view.head_etag = etag
        view.chain = chain
        view.last = manifest
        view.known |= uploaded
        view.bad -= uploaded
        view.blob_sets[manifest.id] = blobs_of(manifest.entries)
        view.digests = stats.digests
        log.info("snapshot %s (%s): %d new chunks", manifest.id, reason, len(uploaded))
        try:
            await self.pruner.drop(dropped)
        except SnapshotError as exc:
            log.warning("pruning old snapshots failed (will retry later): %s", exc)
        return SnapshotInfo.from_summary(manifest.summary)

    async def _put_blob(self, ident: str, sealed: bytes) -> None:
        if ident in self.view.bad:
            # The stored copy failed verification: replace it instead of trusting "exists".
            await self.view.store.delete(blob_key(ident))
        await self.view.store.put_if_absent(blob_key(ident), sealed)
