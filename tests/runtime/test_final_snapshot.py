"""The supervisor's last snapshot at SIGTERM, against a store that goes away.

Exit 0 means everything the container changed is in the store; exit 4 means the final snapshot
failed and the changes since the last one went with the container. 4 is not 3 (the store was
unreachable at boot, nothing started): the Worker holds a page for 3 and starts again at once
after 4 (docs/architecture.md, "Exit codes").
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import cast

import pytest
from runtime_harness import base_env
from sandbox_runtime.logs import LogRing, Redactor
from sandbox_runtime.openclaw_cli import ConfigCheck
from sandbox_runtime.settings import load_settings
from sandbox_runtime.snapshots import (
    SnapshotManager,
    Store,
    StoreUnavailable,
    key_from_env,
    open_store,
)
from sandbox_runtime.snapshots.store import ObjectInfo, StoredObject
from sandbox_runtime.supervisor import EXIT_CHANGES_LOST, EXIT_OK, EXIT_RESTORE, Supervisor


class OutageStore:
    """A working store until `down` is set; then every call fails as an unreachable R2 does."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("the store did not answer (connection refused)")

    def describe(self) -> str:
        return "outage store"

    async def get(self, key: str) -> StoredObject | None:
        self._check()
        return await self.inner.get(key)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self._check()
        return await self.inner.put_if_absent(key, data)

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        self._check()
        return await self.inner.put_if_match(key, data, etag)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        self._check()
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        self._check()
        await self.inner.delete(key)


async def test_final_snapshot_exit_codes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = base_env(tmp_path)
    settings = load_settings(env)
    store = OutageStore(open_store(env))
    key = key_from_env(env)
    # The boot itself is not under test: only the supervisor's snapshot manager is set up.
    sup = Supervisor(settings, store, key, Redactor(), LogRing(), cast(ConfigCheck, object()))
    sup.snapshots = SnapshotManager(store=store, key=key, state_dir=settings.state_dir)
    await sup.snapshots.restore()
    note = settings.state_dir / "notes.md"
    note.parent.mkdir(parents=True, exist_ok=True)

    note.write_text("saved\n")
    assert await sup.final_snapshot() == EXIT_OK
    (saved,) = await sup.snapshots.list()

    # Nothing changed since: the store is not even asked, so an outage loses nothing.
    store.down = True
    calls = store.calls
    assert await sup.final_snapshot() == EXIT_OK
    assert store.calls == calls

    note.write_text("written while the store is down\n")
    with caplog.at_level(logging.ERROR, logger="supervisor"):
        assert await sup.final_snapshot() == EXIT_CHANGES_LOST
    assert EXIT_CHANGES_LOST not in (EXIT_OK, EXIT_RESTORE)
    assert f"the changes since snapshot {saved.id} (" in caplog.text
    assert "are lost: the store did not answer" in caplog.text

    # The store holds the last good generation, which is what the next boot restores.
    store.down = False
    fresh = SnapshotManager(store=store, key=key, state_dir=tmp_path / "next-boot")
    restored = await fresh.restore()
    assert restored.snapshot is not None and restored.snapshot.id == saved.id
    assert (tmp_path / "next-boot" / "notes.md").read_text() == "saved\n"


SANDBOX_TS = Path(__file__).resolve().parents[2] / "worker" / "src" / "sandbox.ts"


def test_the_worker_reads_the_runtimes_exit_codes() -> None:
    """The Worker's copies of the codes (it cannot import Python) are the supervisor's."""
    from sandbox_runtime.supervisor import EXIT_CONFIG

    source = SANDBOX_TS.read_text()
    lost = re.search(r"export const EXIT_CHANGES_LOST = (\d+);", source)
    held = re.search(
        r"export const EXIT_FAILURES: Record<number, string> = \{(.*?)\n\};", source, re.S
    )
    assert lost and held, f"{SANDBOX_TS} no longer declares EXIT_CHANGES_LOST / EXIT_FAILURES"
    assert int(lost.group(1)) == EXIT_CHANGES_LOST
    assert sorted(int(k) for k in re.findall(r"^\s*(\d+):", held.group(1), re.M)) == [
        EXIT_CONFIG,
        EXIT_RESTORE,
    ]
