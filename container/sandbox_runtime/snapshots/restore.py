"""Restore: the newest generation that verifies, materialised in a staging dir next to the state
dir and swapped in whole; on any doubt the state dir is left exactly as it was."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from . import localfs
from .crypto import DecryptError
from .errors import SnapshotError, StoreUnavailable
from .info import Refused, RestoreResult, SnapshotInfo
from .manifest import Entry, Head, Manifest, Summary
from .scan import clear_volatile_rows
from .view import HEAD_KEY, IN_FLIGHT, StoreView, blob_key

log = logging.getLogger(__name__)


class Restorer:
    def __init__(
        self, view: StoreView, state_dir: Path, keep: int, volatile_tables: Sequence[str]
    ) -> None:
        self.view = view
        self.state_dir = state_dir
        self.keep = keep
        self.volatile_tables = tuple(volatile_tables)

    async def restore(self) -> RestoreResult:
        view = self.view
        try:
            await asyncio.to_thread(localfs.recover, self.state_dir)
        except OSError as exc:
            raise SnapshotError(
                f"cannot prepare {self.state_dir} for a restore ({exc}); check that its "
                "parent directory exists and is writable"
            ) from exc
        head_obj = await view.store.get(HEAD_KEY)
        refused: list[Refused] = []
        head: Head | None = None
        listed: list[str] | None = None
        if head_obj is not None:
            try:
                head = view.open_head(head_obj)
            except SnapshotError as exc:
                refused.append(Refused("HEAD", str(exc)))
        if head is None:
            listed = await view.listed_manifest_ids()
            if head_obj is None and not listed:
                await asyncio.to_thread(self.state_dir.mkdir, mode=0o700, exist_ok=True)
                view.adopt(None, None, ())
                log.info("snapshot store is empty: first boot, local state kept as is")
                return RestoreResult(None, (), 0, 0)
            if head_obj is None:
                refused.append(Refused("HEAD", f"missing while {len(listed)} generations exist"))
        candidates = [item.id for item in head.chain] if head else list(listed or [])
        tried = 0
        while tried < len(candidates):
            ident = candidates[tried]
            tried += 1
            restored = await self._try_generation(ident, refused)
            if restored is None:
                if tried == len(candidates) and listed is None:
                    # Every generation HEAD names is bad: as a last resort, try any other
                    # manifest in the store (older, pruned-from-chain or orphaned ones).
                    listed = await view.listed_manifest_ids()
                    candidates += [i for i in listed if i not in candidates]
                continue
            manifest, files, nbytes = restored
            chain = await self._chain_after(manifest, head, candidates)
            view.adopt(head_obj.etag if head_obj else None, manifest, chain)
            if refused:
                log.warning(
                    "restored %s after refusing %s", ident, ", ".join(r.id for r in refused)
                )
            info = SnapshotInfo.from_summary(manifest.summary)
            return RestoreResult(info, tuple(refused), files, nbytes)
        raise SnapshotError(
            "no snapshot generation could be verified ("
            + "; ".join(f"{r.id}: {r.reason}" for r in refused)
            + "). The local state dir was not touched. Check MOLT_SNAPSHOT_KEY and the "
            "store; do not start with an empty state."
        )

    async def _try_generation(
        self, ident: str, refused: list[Refused]
    ) -> tuple[Manifest, int, int] | None:
        """Verify and swap in one generation; None (and a note in `refused`) if it is bad."""
        try:
            manifest = await self.view.fetch_manifest(ident)
            files, nbytes = await self.materialize(manifest)
        except StoreUnavailable:
            raise
        except SnapshotError as exc:
            log.error("refusing snapshot %s: %s", ident, exc)
            refused.append(Refused(ident, str(exc)))
            return None
        except OSError as exc:
            # A local problem (disk full, permissions) would fail every generation alike:
            # report it instead of walking back through good snapshots.
            raise SnapshotError(
                f"writing the restored state next to {self.state_dir} failed ({exc}); "
                "the local state dir was not touched"
            ) from exc
        return manifest, files, nbytes

    async def _chain_after(
        self, manifest: Manifest, head: Head | None, candidates: list[str]
    ) -> tuple[Summary, ...]:
        """The kept chain once `manifest` is current: it and everything older."""
        in_head = [item.id for item in head.chain] if head else []
        if manifest.id in in_head:
            assert head is not None
            return head.chain[in_head.index(manifest.id) :]
        # HEAD was unreadable (or all it named was bad): rebuild the chain from the older
        # manifests that still verify, so pruning does not forget good generations.
        chain = [manifest.summary]
        for ident in candidates[candidates.index(manifest.id) + 1 :]:
            if len(chain) >= self.keep:
                break
            with contextlib.suppress(SnapshotError):
                older = await self.view.fetch_manifest(ident)
                if older.generation < chain[-1].generation:
                    chain.append(older.summary)
        return tuple(chain)

    async def materialize(self, manifest: Manifest) -> tuple[int, int]:
        """Verify every chunk of `manifest` into a staging dir, then swap it in for the state dir.

        Returns (files, bytes); on any failure the staging dir is removed and the state dir is
        as it was.
        """
        staging = await asyncio.to_thread(localfs.staging_dir, self.state_dir)
        try:
            files = [e for e in manifest.entries if e.kind == "file"]
            for entry in manifest.entries:
                if entry.kind == "dir":
                    await asyncio.to_thread(
                        (staging / entry.path).mkdir, mode=0o700, parents=True, exist_ok=True
                    )
            gate = asyncio.Semaphore(IN_FLIGHT)
            failed = asyncio.Event()
            outcomes = await asyncio.gather(
                *(
                    self._restore_file(staging, entry, manifest.chunk_size, gate, failed)
                    for entry in files
                ),
                return_exceptions=True,
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if errors:
                # An unreachable store says nothing about this generation: report that first,
                # so restore stops instead of refusing every generation in turn.
                raise next((e for e in errors if isinstance(e, StoreUnavailable)), errors[0])
            cleared = await asyncio.to_thread(
                clear_volatile_rows, staging, [e.path for e in files], self.volatile_tables
            )
            if cleared:
                log.info(
                    "restore: cleared %d volatile rows (leases of the previous owner)", cleared
                )
            await asyncio.to_thread(_apply_dir_modes, staging, manifest.entries)
            await asyncio.to_thread(localfs.swap_in, staging, self.state_dir)
        except BaseException:
            await asyncio.to_thread(localfs.remove_tree, staging)
            raise
        return len(files), sum(e.size for e in files)

    async def _restore_file(
        self,
        staging: Path,
        entry: Entry,
        chunk_size: int,
        gate: asyncio.Semaphore,
        failed: asyncio.Event,
    ) -> None:
        # Each chunk is appended by one thread call that opens and closes the file itself, so
        # no descriptor is ever shared across an await (a cancelled await must not leave a
        # thread writing to a descriptor number that has since been reused).
        view = self.view
        path = staging / entry.path
        async with gate:
            try:
                await asyncio.to_thread(localfs.create_file, path)
                written = 0
                for index, ident in enumerate(entry.blobs):
                    if failed.is_set():
                        return
                    obj = await view.store.get(blob_key(ident))
                    if obj is None:
                        raise SnapshotError(f"{entry.path}: blob {ident} is missing")
                    try:
                        data = await asyncio.to_thread(view.cipher.open_blob, ident, obj.data)
                    except DecryptError as exc:
                        view.bad.add(ident)
                        raise SnapshotError(f"{entry.path}: {exc}") from None
                    last = index == len(entry.blobs) - 1
                    expected = entry.size - written if last else chunk_size
                    if len(data) != expected:
                        raise SnapshotError(
                            f"{entry.path}: chunk {index} holds {len(data)} bytes, "
                            f"the manifest says {expected}"
                        )
                    await asyncio.to_thread(localfs.append, path, data)
                    written += len(data)
                await asyncio.to_thread(localfs.finish_file, path, entry.mode)
            except BaseException:
                failed.set()
                raise


def _apply_dir_modes(staging: Path, entries: Sequence[Entry]) -> None:
    # Deepest first, so a read-only directory does not block setting its children.
    for entry in sorted((e for e in entries if e.kind == "dir"), key=lambda e: -e.path.count("/")):
        os.chmod(staging / entry.path, entry.mode, follow_symlinks=False)
