"""Unpacking a self-hosted `openclaw backup create` archive, strictly, into a plain tree.

The format (OpenClaw 2026.9.x, read from its `backup create` / `backup verify` code): a gzipped
tar whose every entry lives under one root directory `<archiveRoot>/`, holding
`<archiveRoot>/manifest.json` (schemaVersion 1: archiveRoot, createdAt, assets[{kind,
sourcePath, archivePath}], paths.stateDir, ...) and the payload under
`<archiveRoot>/payload/posix/<absolute source path>`. SQLite databases are already consistent
backups (no -wal/-shm). Only the asset of kind "state" maps onto the runtime's state dir; other
assets (a config or workspace that lived outside the state dir on the old machine) are reported
as skipped, since the container renders its config from env and keeps workspaces in state.

Nothing in the archive is trusted: entry names must be clean relative paths under the root,
only regular files and directories are accepted (no symlinks, hardlinks, devices or fifos),
sizes and counts are capped before anything is written, and files are created exclusively
without following links, so even a crafted archive cannot write outside the scratch directory.
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import sqlite3
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SnapshotError
from .manifest import ManifestError, check_relative_path
from .scan import SQLITE_HEADER

MAX_MANIFEST_BYTES = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * 1024**3
DEFAULT_MAX_ENTRIES = 200_000
_COPY_CHUNK = 1024 * 1024


class ArchiveError(SnapshotError):
    """The archive is not an acceptable OpenClaw backup; nothing was imported."""


@dataclass
class UnpackReport:
    archive_root: str
    created_at: str
    runtime_version: str
    state_source: str
    files: int = 0
    bytes: int = 0
    sqlite: int = 0
    skipped_assets: list[str] = field(default_factory=list)


def unpack_backup(
    archive: Path,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> UnpackReport:
    """Validate `archive` and write its state asset into the empty directory `dest`."""
    if not archive.is_file():
        raise ArchiveError(
            f"{archive} is not a file: pass the .tar.gz `openclaw backup create` wrote"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _members(tar, max_bytes, max_entries)
            root = _single_root(members)
            manifest = _read_manifest(tar, members, root)
            report, state_prefix = _state_asset(manifest, root)
            _extract(tar, members, root, state_prefix, dest, report)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchiveError(f"{archive.name} is not a readable .tar.gz ({exc})") from None
    except ManifestError as exc:
        raise ArchiveError(str(exc)) from None
    _check_databases(dest, report)
    return report


def _members(tar: tarfile.TarFile, max_bytes: int, max_entries: int) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    total = 0
    for info in tar:
        if len(members) >= max_entries:
            raise ArchiveError(f"archive has more than {max_entries} entries; refusing to import")
        name = info.name.rstrip("/")
        try:
            name = check_relative_path(name, "archive")
        except ManifestError:
            raise ArchiveError(
                f"archive entry {info.name!r} is absolute or has ./.. components"
            ) from None
        if not (info.isreg() or info.isdir()):
            kind = "symlink" if info.issym() else "hardlink" if info.islnk() else "special file"
            raise ArchiveError(
                f"archive entry {name!r} is a {kind}; only regular files and directories can "
                "be imported"
            )
        if name in members:
            raise ArchiveError(f"archive lists {name!r} twice")
        total += info.size
        if total > max_bytes:
            raise ArchiveError(
                f"archive expands to more than {max_bytes} bytes; refusing to import "
                "(raise --max-bytes if this is expected)"
            )
        members[name] = info
    if not members:
        raise ArchiveError("archive is empty")
    return members


def _single_root(members: dict[str, tarfile.TarInfo]) -> str:
    roots = {name.split("/", 1)[0] for name in members}
    if len(roots) != 1:
        raise ArchiveError(
            f"archive has {len(roots)} top-level entries; an OpenClaw backup has exactly one root"
        )
    return roots.pop()


def _read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], root: str) -> Any:
    info = members.get(f"{root}/manifest.json")
    if info is None or not info.isreg():
        raise ArchiveError(f"archive has no {root}/manifest.json; is it an `openclaw backup`?")
    if info.size > MAX_MANIFEST_BYTES:
        raise ArchiveError("backup manifest.json is larger than 1 MiB")
    stream = tar.extractfile(info)
    assert stream is not None  # a regular member always has a stream
    try:
        manifest = json.loads(stream.read())
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError("backup manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 1:
        raise ArchiveError(
            "backup manifest has an unsupported schemaVersion (this runtime reads version 1)"
        )
    if manifest.get("archiveRoot") != root:
        raise ArchiveError("backup manifest archiveRoot does not match the archive's root")
    return manifest


def _state_asset(manifest: dict[str, Any], root: str) -> tuple[UnpackReport, str]:
    assets = manifest.get("assets")
    if not isinstance(assets, list) or not all(isinstance(a, dict) for a in assets):
        raise ArchiveError("backup manifest has no valid assets list")
    states = [a for a in assets if a.get("kind") == "state"]
    if len(states) != 1:
        raise ArchiveError(
            f"backup has {len(states)} state assets; an importable backup has exactly one "
            "(was it made with --only-config?)"
        )
    state = states[0]
    source = state.get("sourcePath")
    if not isinstance(source, str) or not source.startswith("/"):
        raise ArchiveError("backup state asset has no absolute POSIX sourcePath (Windows backup?)")
    if posixpath.normpath(source) != source:
        raise ArchiveError("backup state asset sourcePath is not normalized")
    expected = f"{root}/payload/posix{source}"
    if state.get("archivePath") != expected:
        raise ArchiveError("backup state asset archivePath does not match its sourcePath")
    report = UnpackReport(
        archive_root=root,
        created_at=str(manifest.get("createdAt", "")),
        runtime_version=str(manifest.get("runtimeVersion", "")),
        state_source=source,
    )
    for asset in assets:
        other = asset.get("sourcePath")
        if asset is state or not isinstance(other, str):
            continue
        if other != source and not other.startswith(source.rstrip("/") + "/"):
            report.skipped_assets.append(f"{asset.get('kind')}: {other}")
    return report, expected


def _extract(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    root: str,
    state_prefix: str,
    dest: Path,
    report: UnpackReport,
) -> None:
    if any(dest.iterdir()):
        raise ArchiveError(f"{dest} must be empty to unpack into")
    payload = f"{root}/payload"
    for name, info in members.items():
        if name in (root, f"{root}/manifest.json"):
            continue
        if name != payload and not name.startswith(payload + "/"):
            raise ArchiveError(f"archive entry {name!r} is neither the manifest nor payload")
        if not name.startswith(state_prefix + "/"):
            continue  # the state root itself, its parents, or an asset reported as skipped
        rel = name[len(state_prefix) + 1 :]
        target = dest / rel
        if info.isdir():
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stream = tar.extractfile(info)
        assert stream is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_COPY_CHUNK):
                written += len(chunk)
                if written > info.size:
                    break
                out.write(chunk)
            os.fchmod(out.fileno(), (info.mode & 0o777) | 0o600)
        if written != info.size:
            raise ArchiveError(
                f"archive entry {name!r} is truncated or longer than its header says"
            )
        report.files += 1
        report.bytes += written
    for name, info in members.items():
        if info.isdir() and name.startswith(state_prefix + "/"):
            os.chmod(dest / name[len(state_prefix) + 1 :], (info.mode & 0o777) | 0o700)


def _check_databases(dest: Path, report: UnpackReport) -> None:
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                continue
        rel = path.relative_to(dest)
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                verdict = db.execute("PRAGMA quick_check").fetchone()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"database {rel} in the archive cannot be read: {exc}") from None
        if verdict != ("ok",):
            raise ArchiveError(f"database {rel} in the archive fails its integrity check")
        report.sqlite += 1
