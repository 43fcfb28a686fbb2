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

Pruning and concurrent writers: a blob may be referenced by a manifest the pruner has not seen
yet (another writer is between its uploads and its HEAD swap). The sweep therefore keeps every
manifest, and every blob, younger than `prune_grace_s` (default one hour, far longer than any
snapshot takes), keeps the blobs of every young manifest, and aborts if HEAD moved while it was
computing. The one case this cannot cover is a concurrent writer re-using an *old* blob that
just became unreferenced (content that disappeared from every kept generation and came back
within the sweep's few seconds); the deployment runs one writer, and restore's verification
would still refuse that generation and fall back rather than restore it wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from . import localfs
from .crypto import Cipher, DecryptError
from .errors import HeadConflict, SnapshotError, StoreUnavailable
from .manifest import (
    CHUNK_SIZE,
    Entry,
    Head,
    Manifest,
    Summary,
    decode_head,
    decode_manifest,
    encode_head,
    encode_manifest,
    is_manifest_id,
    new_manifest_id,
    utc_now,
)
from .scan import (
    DEFAULT_EXCLUDES,
    DEFAULT_VOLATILE_TABLES,
    Excludes,
    Previous,
    ScanStats,
    build_entries,
    clear_volatile_rows,
    fingerprint,
)
from .store import Store

log = logging.getLogger(__name__)

HEAD_KEY = "snapshots/HEAD"
MANIFESTS = "snapshots/manifests/"
BLOBS = "snapshots/blobs/"
_UPLOADS_IN_FLIGHT = 4


def manifest_key(ident: str) -> str:
    return MANIFESTS + ident


def blob_key(ident: str) -> str:
    return BLOBS + ident


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    created_at: datetime
    size: int
    files: int
    reason: str
    generation: int

    @classmethod
    def from_summary(cls, summary: Summary) -> SnapshotInfo:
        return cls(
            id=summary.id,
            created_at=datetime.fromisoformat(summary.created_at),
            size=summary.size,
            files=summary.files,
            reason=summary.reason,
            generation=summary.generation,
        )


@dataclass(frozen=True)
class Refused:
    """A generation (or HEAD) that restore would not use, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class RestoreResult:
    snapshot: SnapshotInfo | None  # None: the store holds nothing yet (a valid first boot)
    refused: tuple[Refused, ...]  # newer generations skipped before `snapshot`, newest first
    files: int
    bytes: int

    @property
    def fell_back(self) -> bool:
        return bool(self.refused)

    @property
    def empty(self) -> bool:
        return self.snapshot is None


@dataclass(frozen=True)
class SnapshotStatus:
    last_id: str | None
    last_at: datetime | None
    pending: bool  # changes seen by watch() that no snapshot holds yet
    last_error: str | None


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
        self.prune_grace = timedelta(seconds=prune_grace_s)
        self.sweep_interval_s = sweep_interval_s
        self._cipher = Cipher(key)
        self._lock = asyncio.Lock()
        # One dedicated thread reads the state dir; it blocks on uploads that run on the event
        # loop, so it must not compete with them for the default executor's threads.
        self._scan_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="molt-snapshot")
        self._restored = False
        self._head_etag: str | None = None
        self._chain: tuple[Summary, ...] = ()
        self._last: Manifest | None = None
        self._known: set[str] = set()  # blobs verified present in the store
        self._bad: set[str] = set()  # blobs found corrupt in the store: rewrite, never trust
        self._blob_sets: dict[str, frozenset[str]] = {}
        self._digests: dict[str, str] = {}  # SQLite logical digests of the last generation
        self._fenced: str | None = None
        self._last_sweep = 0.0
        self._pending = False
        self._last_error: str | None = None

    # ---------------------------------------------------------------- restore

    async def restore(self) -> RestoreResult:
        """Bring the state dir to the newest verified generation.

        Raises StoreUnavailable when the store cannot be read and SnapshotError when no
        generation verifies; in both cases the local state dir is left exactly as it was.
        """
        async with self._lock:
            try:
                await asyncio.to_thread(localfs.recover, self.state_dir)
            except OSError as exc:
                raise SnapshotError(
                    f"cannot prepare {self.state_dir} for a restore ({exc}); check that its "
                    "parent directory exists and is writable"
                ) from exc
            head_obj = await self.store.get(HEAD_KEY)
            refused: list[Refused] = []
            head: Head | None = None
            listed: list[str] | None = None
            if head_obj is not None:
                try:
                    head = decode_head(self._cipher.open("head", "HEAD", head_obj.data))
                except SnapshotError as exc:
                    refused.append(Refused("HEAD", str(exc)))
            if head is None:
                listed = await self._listed_manifest_ids()
                if head_obj is None and not listed:
                    await asyncio.to_thread(self.state_dir.mkdir, mode=0o700, exist_ok=True)
                    self._adopt(None, None, ())
                    log.info("snapshot store is empty: first boot, local state kept as is")
                    return RestoreResult(None, (), 0, 0)
                if head_obj is None:
                    refused.append(
                        Refused("HEAD", f"missing while {len(listed)} generations exist")
                    )
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
                        listed = await self._listed_manifest_ids()
                        candidates += [i for i in listed if i not in candidates]
                    continue
                manifest, files, nbytes = restored
                chain = await self._chain_after(manifest, head, candidates)
                self._adopt(head_obj.etag if head_obj else None, manifest, chain)
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
            manifest = await self._fetch_manifest(ident)
            files, nbytes = await self._materialize(manifest)
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

    async def _listed_manifest_ids(self) -> list[str]:
        listed = await self.store.list(MANIFESTS)
        ids = [info.key[len(MANIFESTS) :] for info in listed]
        return sorted((i for i in ids if is_manifest_id(i)), reverse=True)

    async def _fetch_manifest(self, ident: str) -> Manifest:
        obj = await self.store.get(manifest_key(ident))
        if obj is None:
            raise SnapshotError(f"manifest {ident} is missing from the store")
        manifest = decode_manifest(self._cipher.open("manifest", ident, obj.data), ident)
        self._blob_sets[ident] = _blobs_of(manifest.entries)
        return manifest

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
                older = await self._fetch_manifest(ident)
                if older.generation < chain[-1].generation:
                    chain.append(older.summary)
        return tuple(chain)

    async def _materialize(self, manifest: Manifest) -> tuple[int, int]:
        staging = await asyncio.to_thread(localfs.staging_dir, self.state_dir)
        try:
            files = [e for e in manifest.entries if e.kind == "file"]
            for entry in manifest.entries:
                if entry.kind == "dir":
                    await asyncio.to_thread(
                        (staging / entry.path).mkdir, mode=0o700, parents=True, exist_ok=True
                    )
            gate = asyncio.Semaphore(_UPLOADS_IN_FLIGHT)
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
        path = staging / entry.path
        async with gate:
            try:
                await asyncio.to_thread(localfs.create_file, path)
                written = 0
                for index, ident in enumerate(entry.blobs):
                    if failed.is_set():
                        return
                    obj = await self.store.get(blob_key(ident))
                    if obj is None:
                        raise SnapshotError(f"{entry.path}: blob {ident} is missing")
                    try:
                        data = await asyncio.to_thread(self._cipher.open_blob, ident, obj.data)
                    except DecryptError as exc:
                        self._bad.add(ident)
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

    def _adopt(
        self, etag: str | None, manifest: Manifest | None, chain: tuple[Summary, ...]
    ) -> None:
        self._restored = True
        self._fenced = None
        self._head_etag = etag
        self._last = manifest
        self._chain = chain
        self._known = set(_blobs_of(manifest.entries)) if manifest else set()
        self._known -= self._bad
        self._digests = {}

    # --------------------------------------------------------------- snapshot

    async def snapshot(self, reason: str) -> SnapshotInfo | None:
        """Record the state dir as a new generation; None when nothing changed.

        Raises HeadConflict when another writer moved HEAD (this manager then refuses further
        snapshots until restore() runs again), StoreUnavailable on store errors (HEAD has not
        moved; a later call retries), SnapshotError otherwise.
        """
        async with self._lock:
            if self._fenced:
                raise HeadConflict(self._fenced)
            if not self._restored:
                raise SnapshotError(
                    "snapshot() before restore(): restore first, so a fresh container never "
                    "records its empty state over the stored one"
                )
            try:
                info = await self._commit(self.state_dir, reason)
            except SnapshotError as exc:
                self._last_error = str(exc)
                raise
            self._last_error = None
            return info

    async def import_tree(self, tree: Path, reason: str) -> SnapshotInfo | None:
        """Record `tree` (for example an unpacked backup archive) as the newest generation."""
        async with self._lock:
            head_obj = await self.store.get(HEAD_KEY)
            if head_obj is None:
                self._adopt(None, None, ())
            else:
                try:
                    head = decode_head(self._cipher.open("head", "HEAD", head_obj.data))
                except SnapshotError as exc:
                    raise SnapshotError(
                        f"the store's HEAD is unreadable ({exc}); boot the runtime once (its "
                        "restore falls back to the last good generation) before importing"
                    ) from exc
                manifest = await self._fetch_manifest(head.manifest)
                self._adopt(head_obj.etag, manifest, head.chain)
            return await self._commit(tree, reason, allow_empty=True)

    async def _commit(
        self, root: Path, reason: str, *, allow_empty: bool = False
    ) -> SnapshotInfo | None:
        loop = asyncio.get_running_loop()
        uploaded: set[str] = set()
        in_flight: list[Future[None]] = []

        def sink(ident: str, data: bytes) -> None:  # runs in the scan thread
            if ident in uploaded or ident in self._known:
                return
            sealed = self._cipher.seal("blob", ident, data)
            in_flight.append(asyncio.run_coroutine_threadsafe(self._put_blob(ident, sealed), loop))
            uploaded.add(ident)
            if len(in_flight) >= _UPLOADS_IN_FLIGHT:
                in_flight.pop(0).result()

        last = self._last
        previous = Previous(
            {entry.path: entry for entry in last.entries} if last else {}, dict(self._digests)
        )

        def scan() -> tuple[list[Entry], ScanStats]:
            try:
                found = build_entries(
                    root, self.excludes, self._cipher.blob_id, sink, previous, self.volatile_tables
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
        if last is not None and tuple(entries) == last.entries:
            self._digests = stats.digests
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
        generation = (self._chain[0].generation if self._chain else 0) + 1
        manifest = Manifest(
            id=new_manifest_id(generation, now),
            generation=generation,
            parent=self._chain[0].id if self._chain else None,
            created_at=now.isoformat(),
            reason=reason[:200],
            chunk_size=CHUNK_SIZE,
            entries=tuple(entries),
        )
        sealed = self._cipher.seal("manifest", manifest.id, encode_manifest(manifest))
        if not await self.store.put_if_absent(manifest_key(manifest.id), sealed):
            raise SnapshotError(f"manifest {manifest.id} already exists; retry the snapshot")
        chain = (manifest.summary, *self._chain[: self.keep - 1])
        head = Head(manifest.id, generation, chain)
        sealed_head = self._cipher.seal("head", "HEAD", encode_head(head))
        try:
            etag = await self.store.put_if_match(HEAD_KEY, sealed_head, self._head_etag)
        except HeadConflict as exc:
            self._fenced = (
                f"another writer moved HEAD since this runtime read it ({exc}); snapshot "
                f"{manifest.id} was not recorded and stays orphaned until pruned. Restart the "
                "runtime so it restores the newer state instead of overwriting it."
            )
            raise HeadConflict(self._fenced) from exc
        dropped = self._chain[self.keep - 1 :]
        self._head_etag = etag
        self._chain = chain
        self._last = manifest
        self._known |= uploaded
        self._bad -= uploaded
        self._blob_sets[manifest.id] = _blobs_of(manifest.entries)
        self._digests = stats.digests
        log.info("snapshot %s (%s): %d new chunks", manifest.id, reason, len(uploaded))
        try:
            await self._prune(dropped)
        except SnapshotError as exc:
            log.warning("pruning old snapshots failed (will retry later): %s", exc)
        return SnapshotInfo.from_summary(manifest.summary)

    async def _put_blob(self, ident: str, sealed: bytes) -> None:
        if ident in self._bad:
            # The stored copy failed verification: replace it instead of trusting "exists".
            await self.store.delete(blob_key(ident))
        await self.store.put_if_absent(blob_key(ident), sealed)

    # ------------------------------------------------------------------ prune

    async def _prune(self, dropped: Sequence[Summary]) -> None:
        for item in dropped:
            await self.store.delete(manifest_key(item.id))
            self._blob_sets.pop(item.id, None)
        if dropped and time.monotonic() - self._last_sweep >= self.sweep_interval_s:
            await self.sweep()

    async def sweep(self) -> int:
        """Delete stray manifests and unreferenced blobs past the grace period; returns count."""
        now = utc_now()
        kept = {item.id for item in self._chain}
        referenced: set[str] = set()
        deleted = 0
        for info in await self.store.list(MANIFESTS):
            ident = info.key[len(MANIFESTS) :]
            young = now - info.last_modified < self.prune_grace
            if ident in kept or young:
                blobs = self._blob_sets.get(ident)
                if blobs is None:
                    try:
                        blobs = _blobs_of((await self._fetch_manifest(ident)).entries)
                    except SnapshotError as exc:
                        if isinstance(exc, StoreUnavailable):
                            raise
                        continue
                referenced |= blobs
            else:
                await self.store.delete(info.key)
                deleted += 1
        blobs_listed = await self.store.list(BLOBS)
        current = await self.store.get(HEAD_KEY)
        if current is None or current.etag != self._head_etag:
            log.warning("HEAD moved during the sweep (another writer?); no blob deleted")
            return deleted
        for info in blobs_listed:
            ident = info.key[len(BLOBS) :]
            if ident not in referenced and now - info.last_modified >= self.prune_grace:
                await self.store.delete(info.key)
                self._known.discard(ident)
                deleted += 1
        self._last_sweep = time.monotonic()
        return deleted

    # ------------------------------------------------------------------- list

    async def list(self) -> list[SnapshotInfo]:
        """The kept generations, newest first (one store read)."""
        head_obj = await self.store.get(HEAD_KEY)
        if head_obj is None:
            return []
        head = decode_head(self._cipher.open("head", "HEAD", head_obj.data))
        return [SnapshotInfo.from_summary(item) for item in head.chain]

    def status(self) -> SnapshotStatus:
        last = self._chain[0] if self._chain else None
        return SnapshotStatus(
            last_id=last.id if last else None,
            last_at=datetime.fromisoformat(last.created_at) if last else None,
            pending=self._pending,
            last_error=self._fenced or self._last_error,
        )

    # ------------------------------------------------------------------ watch

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
        task = asyncio.create_task(self._watch(stop, debounce_s, poll_s, max_delay_s))
        try:
            yield
        finally:
            stop.set()
            await task

    async def _watch(
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
            self._pending = first_dirty is not None
            if first_dirty is None or now < retry_at:
                continue
            if now - last_change < debounce_s and now - first_dirty < max_delay_s:
                continue
            try:
                await self.snapshot("watch")
            except HeadConflict as exc:
                log.error("watch stops: %s", exc)
                return
            except Exception as exc:
                # Keep watching whatever went wrong: a watcher that died silently would turn
                # every later change into loss.
                log.error("snapshot failed, retrying in %.0f s: %s", backoff, exc)
                self._last_error = str(exc)
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, 60.0)
                continue
            first_dirty = None
            backoff = 1.0
            self._pending = False

    async def _fingerprint(self) -> frozenset[tuple[str, int, int, int]]:
        return await asyncio.to_thread(fingerprint, self.state_dir, self.excludes)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _blobs_of(entries: Sequence[Entry]) -> frozenset[str]:
    return frozenset(ident for entry in entries for ident in entry.blobs)


def _apply_dir_modes(staging: Path, entries: Sequence[Entry]) -> None:
    # Deepest first, so a read-only directory does not block setting its children.
    for entry in sorted((e for e in entries if e.kind == "dir"), key=lambda e: -e.path.count("/")):
        os.chmod(staging / entry.path, entry.mode, follow_symlinks=False)
