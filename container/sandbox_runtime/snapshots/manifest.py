"""Manifests (one per snapshot generation) and the HEAD record, with strict validation.

Both are JSON, zlib-compressed, then sealed (see crypto.py), so file names never reach the store
in clear. Decoding treats the content as hostile even after authentication (a leaked key, a bug
in an older writer): every path must be a clean relative path, every entry a regular file or a
directory, sizes must add up, and limits bound what a manifest can make restore allocate.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .errors import SnapshotError

FORMAT = 1
CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_ENTRIES = 500_000
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_PATH_BYTES = 4096
MAX_CHAIN = 1000

_BLOB_RE = re.compile(r"^[0-9a-f]{64}$")
_ID_RE = re.compile(r"^\d{10}-\d{13}-[0-9a-f]{8}$")

Kind = Literal["file", "dir"]


class ManifestError(SnapshotError):
    """A manifest or HEAD decrypted but is not acceptable."""


@dataclass(frozen=True)
class Entry:
    path: str
    kind: Kind
    mode: int
    size: int
    blobs: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "blobs": list(self.blobs)}


@dataclass(frozen=True)
class Summary:
    """What list() shows for a generation; HEAD carries these so listing costs one read."""

    id: str
    generation: int
    created_at: str
    reason: str
    size: int
    files: int


@dataclass(frozen=True)
class Manifest:
    id: str
    generation: int
    parent: str | None
    created_at: str
    reason: str
    chunk_size: int
    entries: tuple[Entry, ...]

    @property
    def summary(self) -> Summary:
        files = [e for e in self.entries if e.kind == "file"]
        return Summary(
            self.id,
            self.generation,
            self.created_at,
            self.reason,
            sum(e.size for e in files),
            len(files),
        )


@dataclass(frozen=True)
class Head:
    manifest: str
    generation: int
    chain: tuple[Summary, ...]  # newest first; chain[0].id == manifest


def new_manifest_id(generation: int, now: datetime) -> str:
    import secrets

    millis = int(now.timestamp() * 1000)
    return f"{generation:010d}-{millis:013d}-{secrets.token_hex(4)}"


def is_manifest_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def utc_now() -> datetime:
    return datetime.now(UTC)


def encode_manifest(manifest: Manifest) -> bytes:
    body = {
        "format": FORMAT,
        "id": manifest.id,
        "generation": manifest.generation,
        "parent": manifest.parent,
        "created_at": manifest.created_at,
        "reason": manifest.reason,
        "chunk_size": manifest.chunk_size,
        "entries": [entry.to_json() for entry in manifest.entries],
    }
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


def decode_manifest(data: bytes, expected_id: str) -> Manifest:
    body = _load(data, f"manifest {expected_id}")
    where = f"manifest {expected_id}"
    if body.get("format") != FORMAT:
        raise ManifestError(
            f"{where} has format {body.get('format')!r}; this runtime reads {FORMAT}"
        )
    if body.get("id") != expected_id:
        raise ManifestError(f"{where} claims to be {body.get('id')!r}")
    chunk_size = _int(body, "chunk_size", where, 1, MAX_CHUNK_SIZE)
    raw_entries = body.get("entries")
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise ManifestError(f"{where}: entries must be a list of at most {MAX_ENTRIES}")
    entries = tuple(_entry(raw, chunk_size, where) for raw in raw_entries)
    _check_tree(entries, where)
    parent = body.get("parent")
    if parent is not None and not (isinstance(parent, str) and is_manifest_id(parent)):
        raise ManifestError(f"{where}: bad parent id")
    return Manifest(
        id=expected_id,
        generation=_int(body, "generation", where, 1, 10**10 - 1),
        parent=parent,
        created_at=_timestamp(body, where),
        reason=_reason(body.get("reason"), where),
        chunk_size=chunk_size,
        entries=entries,
    )


def encode_head(head: Head) -> bytes:
    body = {
        "format": FORMAT,
        "manifest": head.manifest,
        "generation": head.generation,
        "chain": [asdict(item) for item in head.chain],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_head(data: bytes) -> Head:
    where = "HEAD"
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("HEAD is not valid JSON") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ManifestError(f"HEAD has an unknown format; this runtime reads {FORMAT}")
    raw_chain = body.get("chain")
    if not isinstance(raw_chain, list) or not 1 <= len(raw_chain) <= MAX_CHAIN:
        raise ManifestError("HEAD chain must list 1 to 1000 generations")
    chain = tuple(_summary(item) for item in raw_chain)
    manifest = body.get("manifest")
    if not isinstance(manifest, str) or manifest != chain[0].id:
        raise ManifestError("HEAD points at a manifest that is not first in its chain")
    if len({item.id for item in chain}) != len(chain):
        raise ManifestError("HEAD chain lists a generation twice")
    return Head(manifest, _int(body, "generation", where, 1, 10**10 - 1), chain)


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        decompressor = zlib.decompressobj()
        raw = decompressor.decompress(data, MAX_MANIFEST_BYTES)
        if decompressor.unconsumed_tail or not decompressor.eof:
            raise ManifestError(f"{where} is truncated or larger than {MAX_MANIFEST_BYTES} bytes")
        body = json.loads(raw)
    except (zlib.error, ValueError, UnicodeDecodeError):
        raise ManifestError(f"{where} is not a valid manifest") from None
    if not isinstance(body, dict):
        raise ManifestError(f"{where} is not a JSON object")
    return body


def _entry(raw: Any, chunk_size: int, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: an entry is not an object")
    path = check_relative_path(raw.get("path"), where)
    kind = raw.get("kind")
    if kind not in ("file", "dir"):
        # Symlinks, hardlinks, devices, fifos: restore only ever creates files and directories.
        raise ManifestError(f"{where}: {path!r} has kind {kind!r}; only file and dir are allowed")
    mode = _int(raw, "mode", f"{where}: {path!r}", 0, 0o777)
    size = _int(raw, "size", f"{where}: {path!r}", 0, 2**50)
    blobs = raw.get("blobs")
    if not isinstance(blobs, list) or not all(
        isinstance(b, str) and _BLOB_RE.match(b) for b in blobs
    ):
        raise ManifestError(f"{where}: {path!r} has a malformed blob list")
    if kind == "dir" and (blobs or size):
        raise ManifestError(f"{where}: directory {path!r} carries content")
    if kind == "file" and len(blobs) != -(-size // chunk_size):
        raise ManifestError(
            f"{where}: {path!r} declares {size} bytes but lists {len(blobs)} chunks of {chunk_size}"
        )
    return Entry(path, kind, mode, size, tuple(blobs))


def check_relative_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: an entry has no path")
    if len(value.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES or "\0" in value:
        raise ManifestError(f"{where}: path {value[:80]!r}... is too long or has a NUL byte")
    if value.startswith("/"):
        raise ManifestError(f"{where}: absolute path {value!r}")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"{where}: path {value!r} is not a clean relative path (., .., //)")
    return value


def _check_tree(entries: tuple[Entry, ...], where: str) -> None:
    kinds: dict[str, Kind] = {}
    for entry in entries:
        if entry.path in kinds:
            raise ManifestError(f"{where}: duplicate path {entry.path!r}")
        kinds[entry.path] = entry.kind
    for entry in entries:
        parent = entry.path.rpartition("/")[0]
        while parent:
            if kinds.get(parent) == "file":
                raise ManifestError(f"{where}: {entry.path!r} lies under the file {parent!r}")
            parent = parent.rpartition("/")[0]


def _summary(raw: Any) -> Summary:
    if not isinstance(raw, dict):
        raise ManifestError("HEAD chain item is not an object")
    ident = raw.get("id")
    if not isinstance(ident, str) or not is_manifest_id(ident):
        raise ManifestError("HEAD chain item has a bad id")
    where = f"HEAD chain item {ident}"
    return Summary(
        id=ident,
        generation=_int(raw, "generation", where, 1, 10**10 - 1),
        created_at=_timestamp(raw, where),
        reason=_reason(raw.get("reason"), where),
        size=_int(raw, "size", where, 0, 2**62),
        files=_int(raw, "files", where, 0, MAX_ENTRIES),
    )


def _int(body: dict[str, Any], name: str, where: str, low: int, high: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ManifestError(f"{where}: {name} must be an integer in [{low}, {high}]")
    return value


def _timestamp(body: dict[str, Any], where: str) -> str:
    value = body.get("created_at")
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ManifestError(f"{where}: created_at must be an ISO timestamp with a zone")
    return str(value)


def _reason(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ManifestError(f"{where}: reason must be a string of at most 200 characters")
    return value
