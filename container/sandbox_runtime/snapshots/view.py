"""The store layout (see manager.py) and one runtime's view of it, shared by restore, write and
prune: HEAD's etag and kept chain as last read or written, the newest manifest, and which blobs
are known to be in the store (or known to be corrupt there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .crypto import Cipher
from .errors import SnapshotError
from .manifest import Entry, Head, Manifest, Summary, decode_head, decode_manifest, is_manifest_id
from .store import Store, StoredObject

HEAD_KEY = "snapshots/HEAD"
MANIFESTS = "snapshots/manifests/"
BLOBS = "snapshots/blobs/"
# Blob transfers in flight at once, for uploads and for restores alike.
IN_FLIGHT = 4


def manifest_key(ident: str) -> str:
    return MANIFESTS + ident


def blob_key(ident: str) -> str:
    return BLOBS + ident


def blobs_of(entries: Sequence[Entry]) -> frozenset[str]:
    return frozenset(ident for entry in entries for ident in entry.blobs)


@dataclass
class StoreView:
    store: Store
    cipher: Cipher
    restored: bool = False  # restore() ran: only then may the local state be recorded
    head_etag: str | None = None
    chain: tuple[Summary, ...] = ()
    last: Manifest | None = None
    known: set[str] = field(default_factory=set[str])  # blobs verified present in the store
    bad: set[str] = field(
        default_factory=set[str]
    )  # found corrupt in the store: rewrite, never trust
    blob_sets: dict[str, frozenset[str]] = field(default_factory=dict[str, frozenset[str]])
    digests: dict[str, str] = field(default_factory=dict[str, str])  # SQLite digests of `last`
    fenced: str | None = None  # why this writer lost HEAD to another one

    def adopt(
        self, etag: str | None, manifest: Manifest | None, chain: tuple[Summary, ...]
    ) -> None:
        """Take `manifest` (None: an empty store) as the newest generation, HEAD at `etag`."""
        self.restored = True
        self.fenced = None
        self.head_etag = etag
        self.last = manifest
        self.chain = chain
        self.known = set(blobs_of(manifest.entries)) if manifest else set()
        self.known -= self.bad
        self.digests = {}

    def open_head(self, obj: StoredObject) -> Head:
        return decode_head(self.cipher.open("head", "HEAD", obj.data))

    async def fetch_manifest(self, ident: str) -> Manifest:
        obj = await self.store.get(manifest_key(ident))
        if obj is None:
            raise SnapshotError(f"manifest {ident} is missing from the store")
        manifest = decode_manifest(self.cipher.open("manifest", ident, obj.data), ident)
        self.blob_sets[ident] = blobs_of(manifest.entries)
        return manifest

    async def listed_manifest_ids(self) -> list[str]:
        """Every well-named manifest in the store, newest first (one list call)."""
        listed = await self.store.list(MANIFESTS)
        ids = [info.key[len(MANIFESTS) :] for info in listed]
        return sorted((i for i in ids if is_manifest_id(i)), reverse=True)
