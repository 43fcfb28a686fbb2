"""Reading the state directory: what to include, consistent copies, change fingerprints.

SQLite databases are recognised by their 16-byte header, not their name, and read through
`sqlite3.Connection.backup` into a private temp file: a byte copy of a live database can catch a
half-applied transaction, and its `-wal` holds commits the main file does not have yet. Their
`-wal`/`-shm`/`-journal` siblings are therefore never stored (the backup already contains every
committed page). Other files are read through one descriptor and re-read when their size or
mtime moved during the read.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SnapshotError
from .manifest import CHUNK_SIZE, Entry

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")

# What a real OpenClaw state dir holds that must not be snapshotted (observed by running
# `openclaw gateway run` with OPENCLAW_STATE_DIR set, and matching what `openclaw backup create`
# itself treats as regenerable or volatile):
#   tmp/            gateway.*.lock / *.lock.sqlite files with a pid, CLI shims, transfer scratch.
#                   A restored lock names a dead pid of another container and can block startup.
#   cache/          control-ui-assets/<hash>/ (~54 MB) unpacked from the installed package at
#                   start; everything under cache/ is re-derivable by definition.
#   npm/, npm-runtime/, tools/, node_modules/, plugin-skills/
#                   installed code and generated symlink indexes, rebuilt by OpenClaw (plugins
#                   are reinstalled with `openclaw plugins update`, as its own backup documents).
#   sandbox/skills-workspaces/   scratch copies of skills for sandboxed runs.
#   browser/*/user-data/Singleton*   Chromium's profile locks; restored, they stop Chromium.
#   logs/, *.log    diagnostics, not state; they change constantly and would defeat "no change,
#                   no snapshot".
#   *.lock, *.pid, *.sock, *.tmp   per-process files, meaningless in another container.
# Session transcripts (agents/*/sessions/*.jsonl) are deliberately kept: they are conversations.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "tmp/**",
    "cache/**",
    "npm/**",
    "npm-runtime/**",
    "tools/**",
    "plugin-skills/**",
    "sandbox/skills-workspaces/**",
    "browser/*/user-data/Singleton*",
    "logs/**",
    "node_modules",
    "*.log",
    "*.lock",
    "*.pid",
    "*.sock",
    "*.tmp",
)


class Excludes:
    """gitignore-like globs: no slash matches a name at any depth, a slash anchors at the root,
    `**` spans any number of directories. A matched directory is skipped whole."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._anchored: list[list[str]] = []
        self._names: list[str] = []
        for pattern in patterns:
            cleaned = pattern.strip().strip("/")
            if not cleaned:
                continue
            if "/" in cleaned:
                self._anchored.append(cleaned.split("/"))
            else:
                self._names.append(cleaned)

    def __call__(self, rel: str) -> bool:
        name = rel.rpartition("/")[2]
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self._names):
            return True
        parts = rel.split("/")
        return any(_match_parts(pattern, parts) for pattern in self._anchored)


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match_parts(pattern[1:], parts[1:])
    )


# Tables whose rows change while the agent is idle and mean nothing after a restore. An idle
# OpenClaw 2026.9.6 gateway writes exactly one thing: it renews its `gateway-owner` lease in
# state/openclaw.sqlite every 30 s (owner pid and host, expiring 5 min later). Snapshotting that
# would cost ~120 generations an hour and push real history out of the kept chain within minutes.
# A database whose only changes are in these tables keeps its previous stored bytes; any other
# change stores the whole current database, leases included. A restore empties these tables in
# the restored copy (clear_volatile_rows): in a new container an unexpired `gateway-owner` lease
# of the old one held the first gateway off for its 5 minutes (seen with the built image after
# a `kill -9`; on the same host OpenClaw reclaims a dead pid's lease itself).
DEFAULT_VOLATILE_TABLES: tuple[str, ...] = ("state_leases",)


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    sqlite: int = 0
    skipped: list[str] = field(default_factory=list)
    # Logical digest of each SQLite database (content outside the volatile tables).
    digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Previous:
    """The last stored generation, so unchanged databases can keep their stored bytes."""

    entries: Mapping[str, Entry] = field(default_factory=dict)
    digests: Mapping[str, str] = field(default_factory=dict)


ChunkSink = Callable[[str, bytes], None]


def walk(root: Path, excludes: Excludes) -> Iterator[tuple[str, os.stat_result]]:
    """Every non-excluded entry under root (depth first, sorted), without following links."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                children = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        subdirs: list[str] = []
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            if excludes(rel):
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def fingerprint(root: Path, excludes: Excludes) -> frozenset[tuple[str, int, int, int]]:
    """Cheap change detection: (path, size, mtime_ns, inode) of every entry.

    Unlike a snapshot this keeps `-wal` and `-journal` files: in WAL mode a commit touches only
    the -wal, so the database file alone would look idle. `-shm` is left out because readers
    update it too.
    """
    return frozenset(
        (rel, st.st_size, st.st_mtime_ns, st.st_ino)
        for rel, st in walk(root, excludes)
        if not rel.endswith("-shm")
    )


def build_entries(
    root: Path,
    excludes: Excludes,
    blob_id: Callable[[bytes], str],
    sink: ChunkSink,
    previous: Previous | None = None,
    volatile_tables: Sequence[str] = DEFAULT_VOLATILE_TABLES,
) -> tuple[list[Entry], ScanStats]:
    """Read the state dir into manifest entries; every new chunk goes through `sink`."""
    stats = ScanStats()
    previous = previous or Previous()
    entries: list[Entry] = []
    seen = list(walk(root, excludes))
    names = {rel for rel, _ in seen}
    with tempfile.TemporaryDirectory(prefix="molt-snapshot-") as scratch:
        for rel, st in seen:
            mode = stat.S_IMODE(st.st_mode) & 0o777
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel, "dir", mode, 0, ()))
                continue
            if not stat.S_ISREG(st.st_mode):
                # Symlinks, sockets, fifos, devices are not state we can restore safely.
                stats.skipped.append(rel)
                continue
            if any(rel.endswith(s) and rel[: -len(s)] in names for s in SQLITE_SIDECARS):
                continue
            path = root / rel
            try:
                if _is_sqlite(path):
                    copy = _backup_sqlite(path, Path(scratch))
                    if copy is None:
                        size, blobs = _read_stable(path, blob_id, sink)
                    else:
                        size, blobs = _stored_database(
                            rel, copy, blob_id, sink, previous, volatile_tables, stats
                        )
                    stats.sqlite += 1
                else:
                    size, blobs = _read_stable(path, blob_id, sink)
            except FileNotFoundError:
                continue  # deleted while we scanned: absent from this generation
            entries.append(Entry(rel, "file", mode, size, tuple(blobs)))
            stats.files += 1
            stats.bytes += size
    return entries, stats


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb", opener=_nofollow) as f:
        return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _backup_sqlite(path: Path, scratch: Path) -> Path | None:
    """A consistent private copy through the backup API; None if the database is damaged."""
    copy = scratch / "db.sqlite"
    copy.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            source.execute("PRAGMA query_only = ON")
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise SnapshotError(f"{path.name}: database stayed locked for 30 s; retry") from exc
        raise SnapshotError(f"{path.name}: SQLite backup failed: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        # A damaged database cannot be backed up; its bytes are still the best copy we have.
        log.warning("SQLite backup of %s failed (%s); storing its bytes as they are", path, exc)
        return None
    return copy


def _stored_database(
    rel: str,
    copy: Path,
    blob_id: Callable[[bytes], str],
    sink: ChunkSink,
    previous: Previous,
    volatile_tables: Sequence[str],
    stats: ScanStats,
) -> tuple[int, list[str]]:
    size, blobs = _read_stable(copy, blob_id, _discard)
    before = previous.entries.get(rel)
    if before is not None and before.blobs == tuple(blobs):
        if rel in previous.digests:
            stats.digests[rel] = previous.digests[rel]
        return size, blobs
    digest = logical_digest(copy, volatile_tables)
    if digest is not None:
        stats.digests[rel] = digest
        if before is not None and before.kind == "file" and previous.digests.get(rel) == digest:
            return before.size, list(before.blobs)
    return _read_stable(copy, blob_id, sink)


def logical_digest(db_path: Path, volatile_tables: Sequence[str]) -> str | None:
    """SHA-256 over schema and rows, leaving out `volatile_tables`; None if unreadable.

    Virtual tables are skipped (their modules, such as sqlite-vec, may not load here); their
    data lives in ordinary shadow tables, which are included.
    """
    digest = hashlib.sha256()
    skip = set(volatile_tables)
    try:
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
        try:
            schema = db.execute(
                "SELECT type, name, sql FROM sqlite_schema ORDER BY type, name"
            ).fetchall()
            for kind, name, sql in schema:
                digest.update(repr((kind, name, sql)).encode())
                virtual = (sql or "").upper().startswith("CREATE VIRTUAL")
                if kind != "table" or name in skip or virtual:
                    continue
                quoted = '"' + name.replace('"', '""') + '"'
                for row in db.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 (quoted name)
                    digest.update(repr(row).encode())
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.info("no logical digest for %s (%s); storing it whole", db_path.name, exc)
        return None
    return digest.hexdigest()


def clear_volatile_rows(root: Path, paths: Sequence[str], volatile_tables: Sequence[str]) -> int:
    """Empty the volatile tables of the restored SQLite databases under `root`; rows removed.

    A restored generation comes from processes that are gone: its leases would make the first
    gateway of this boot wait for them to expire (OpenClaw reclaims a dead owner's lease only when
    it can see that the owner's pid is gone on the same host, and a new container is another
    host). Nothing else reads these tables, and the snapshotter never stored them on their own.
    """
    removed = 0
    for rel in paths:
        path = root / rel
        if not _is_sqlite(path):
            continue
        try:
            db = sqlite3.connect(path)
            try:
                tables = {
                    name
                    for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
                }
                with db:
                    for name in volatile_tables:
                        if name in tables:
                            quoted = '"' + name.replace('"', '""') + '"'
                            removed += db.execute(f"DELETE FROM {quoted}").rowcount  # noqa: S608
            finally:
                db.close()
        except sqlite3.Error as exc:
            # Not fatal: the gateway then waits for the old lease to expire.
            log.warning("cannot clear the volatile tables of %s (%s)", rel, exc)
    return removed


def _discard(_ident: str, _data: bytes) -> None:
    return None


def _read_stable(
    path: Path, blob_id: Callable[[bytes], str], sink: ChunkSink, attempts: int = 3
) -> tuple[int, list[str]]:
    for attempt in range(attempts):
        with open(path, "rb", opener=_nofollow) as f:
            before = os.fstat(f.fileno())
            blobs: list[str] = []
            size = 0
            while chunk := f.read(CHUNK_SIZE):
                ident = blob_id(chunk)
                sink(ident, chunk)
                blobs.append(ident)
                size += len(chunk)
            after = os.fstat(f.fileno())
        stable = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        if stable and size == after.st_size:
            return size, blobs
        if attempt == attempts - 1:
            log.warning("%s kept changing while read; the next snapshot will catch up", path)
            return size, blobs
    raise AssertionError("unreachable")


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)
