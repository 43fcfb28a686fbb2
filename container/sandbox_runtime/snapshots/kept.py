"""Kept (pinned) generations: `snapshots/kept/<id>`, one small sealed object per generation.

A marker is its own object, never a field of HEAD: HEAD is rewritten by every snapshot, so a
writer holding a stale HEAD would drop a field it never read, while a marker is only created
(create-if-absent) and only deleted by an explicit unkeep. The pruner honours a marker by its
name alone (one list call, no decryption): a forged or unreadable marker can only keep data
longer, never lose it. Runtimes older than this never list `snapshots/kept/`, so the store stays
readable by them; such a runtime's writer would prune a kept generation like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SnapshotError, StoreUnavailable
from .manifest import Summary, is_manifest_id, utc_now
from .view import StoreView, manifest_key

KEPT = "snapshots/kept/"
MAX_REASON = 200


def kept_key(ident: str) -> str:
    return KEPT + ident


@dataclass(frozen=True)
class Kept:
    id: str
    reason: str  # "" when the marker cannot be read with this key
    kept_at: str


async def kept_ids(view: StoreView) -> frozenset[str]:
    listed = await view.store.list(KEPT)
    return frozenset(
        ident for ident in (info.key[len(KEPT) :] for info in listed) if is_manifest_id(ident)
    )


def retain(
    candidates: Sequence[Summary], keep: int, kept: frozenset[str], limit: int
) -> tuple[tuple[Summary, ...], tuple[Summary, ...]]:
    """(the chain, the generations that fall off it) for `candidates`, newest first.

    The newest `keep` generations that are not kept stay, and every kept one stays on top of
    them. Past `limit` (what HEAD may list) the oldest are cut; a kept one cut that way is not
    returned as dropped, so its manifest and blobs survive through its marker.
    """
    chain: list[Summary] = []
    dropped: list[Summary] = []
    unkept = 0
    for item in candidates:
        if item.id in kept:
            chain.append(item)
        elif unkept < keep:
            chain.append(item)
            unkept += 1
        else:
            dropped.append(item)
    dropped += [item for item in chain[limit:] if item.id not in kept]
    return tuple(chain[:limit]), tuple(dropped)


async def keep(view: StoreView, ident: str, reason: str) -> bool:
    """Mark `ident` kept; False when it already was. Raises if the generation is not stored."""
    if not is_manifest_id(ident):
        raise SnapshotError(f"{ident!r} is not a snapshot id (take one from `list`)")
    await view.fetch_manifest(ident)  # refuses a generation that is gone or unreadable
    body = json.dumps({"reason": reason[:MAX_REASON], "kept_at": utc_now().isoformat()})
    sealed = view.cipher.seal("kept", ident, body.encode())
    created = await view.store.put_if_absent(kept_key(ident), sealed)
    # A writer that listed the markers just before ours existed may have dropped the
    # generation since: check again, so "kept" is never printed for a generation that is gone.
    if await view.store.get(manifest_key(ident)) is None:
        await view.store.delete(kept_key(ident))
        raise SnapshotError(
            f"generation {ident} was pruned while it was being kept; keep a newer one"
        )
    return created


async def unkeep(view: StoreView, ident: str) -> bool:
    """Remove the marker; False when there was none. The generation is pruned as usual after."""
    if not is_manifest_id(ident):
        raise SnapshotError(f"{ident!r} is not a snapshot id (take one from `list`)")
    if await view.store.get(kept_key(ident)) is None:
        return False
    await view.store.delete(kept_key(ident))
    return True


async def list_kept(view: StoreView) -> list[Kept]:
    found: list[Kept] = []
    for ident in sorted(await kept_ids(view), reverse=True):
        obj = await view.store.get(kept_key(ident))
        if obj is None:
            continue
        try:
            body = json.loads(view.cipher.open("kept", ident, obj.data))
            found.append(Kept(ident, str(body["reason"]), str(body["kept_at"])))
        except StoreUnavailable:
            raise
        except (SnapshotError, ValueError, KeyError, TypeError):
            found.append(Kept(ident, "", ""))
    return found
