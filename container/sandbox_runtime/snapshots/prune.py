"""Prune: generations that fell off the kept chain, then (at most every `sweep_interval_s`) a
sweep of stray manifests and unreferenced blobs older than the grace period (see manager.py for
why the grace period and the HEAD check make this safe next to a concurrent writer). Kept
generations (kept.py) never fall off the chain, and the sweep spares their manifests and blobs
even when they are no longer on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from .errors import SnapshotError, StoreUnavailable
from .kept import kept_ids, retain
from .manifest import MAX_CHAIN, Summary, utc_now
from .view import BLOBS, HEAD_KEY, MANIFESTS, StoreView, blobs_of, manifest_key

log = logging.getLogger(__name__)


class Pruner:
    def __init__(self, view: StoreView, prune_grace_s: float, sweep_interval_s: float) -> None:
        self.view = view
        self.prune_grace = timedelta(seconds=prune_grace_s)
        self.sweep_interval_s = sweep_interval_s
        self._last_sweep = 0.0

    async def retain(
        self, candidates: Sequence[Summary], keep: int
    ) -> tuple[tuple[Summary, ...], tuple[Summary, ...]]:
        """The next chain and what falls off it; the kept markers are listed only when
        something would fall off, so a chain that is not full costs no extra store call."""
        if len(candidates) <= keep:
            return tuple(candidates), ()
        return retain(candidates, keep, await kept_ids(self.view), MAX_CHAIN)

    async def drop(self, dropped: Sequence[Summary]) -> None:
        """Delete the manifests of generations that just fell off the chain."""
        for item in dropped:
            await self.view.store.delete(manifest_key(item.id))
            self.view.blob_sets.pop(item.id, None)
        if dropped and time.monotonic() - self._last_sweep >= self.sweep_interval_s:
            await self.sweep()

    async def sweep(self) -> int:
        view = self.view
        now = utc_now()
        kept = {item.id for item in view.chain} | await kept_ids(view)
        referenced: set[str] = set()
        deleted = 0
        for info in await view.store.list(MANIFESTS):
            ident = info.key[len(MANIFESTS) :]
            young = now - info.last_modified < self.prune_grace
            if ident in kept or young:
                blobs = view.blob_sets.get(ident)
                if blobs is None:
                    try:
                        blobs = blobs_of((await view.fetch_manifest(ident)).entries)
                    except SnapshotError as exc:
                        if isinstance(exc, StoreUnavailable):
                            raise
                        continue
                referenced |= blobs
            else:
                await view.store.delete(info.key)
                deleted += 1
        blobs_listed = await view.store.list(BLOBS)
        current = await view.store.get(HEAD_KEY)
        if current is None or current.etag != view.head_etag:
            log.warning("HEAD moved during the sweep (another writer?); no blob deleted")
            return deleted
        for info in blobs_listed:
            ident = info.key[len(BLOBS) :]
            if ident not in referenced and now - info.last_modified >= self.prune_grace:
                await view.store.delete(info.key)
                view.known.discard(ident)
                deleted += 1
        self._last_sweep = time.monotonic()
        return deleted
