"""The upgrade row of the status: the generations `ops upgrade` kept, read once per boot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sandbox_runtime.snapshots import SnapshotManager, StoreUnavailable
from sandbox_runtime.snapshots.dirstore import DirStore
from sandbox_runtime.snapshots.store import ObjectInfo
from sandbox_runtime.upgrade_state import UpgradeState
from snapshot_helpers import KEY, make_state

pytestmark = pytest.mark.timeout(30)


async def read(state: UpgradeState) -> dict:
    for _ in range(200):
        status = state.status()
        if status["state"] != "checking":
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the kept snapshots were never read")


def manager(tmp_path: Path) -> SnapshotManager:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    return SnapshotManager(DirStore(root), KEY, make_state(tmp_path / "state"), keep=3)


async def test_nothing_kept_says_how_to_upgrade(tmp_path: Path) -> None:
    state = UpgradeState()
    assert state.status()["state"] == "checking"
    state.read(manager(tmp_path))
    status = await read(state)
    assert status["state"] == "none" and status["kept"] == []
    assert "python -m ops upgrade --stack <stack> --to <version>" in status["message"]


async def test_the_kept_pre_upgrade_snapshot_and_how_to_release_it(tmp_path: Path) -> None:
    snapshots = manager(tmp_path)
    await snapshots.restore()
    first = await snapshots.snapshot("before")
    assert first is not None
    await snapshots.keep_generation(first.id, "before the upgrade to openclaw 2026.9.7")
    (snapshots.state_dir / "openclaw.json").write_text('{"gateway": {"x": 1}}')
    second = await snapshots.snapshot("after")
    assert second is not None
    await snapshots.keep_generation(second.id, "written by openclaw 2026.9.7 before its rollback")

    state = UpgradeState()
    state.read(snapshots)
    status = await read(state)
    assert status["state"] == "kept"
    assert [k["id"] for k in status["kept"]] == [second.id, first.id]
    assert f"Snapshot {second.id} is kept (written by openclaw 2026.9.7" in status["message"]
    assert f"python -m ops backup unkeep {second.id} --stack <stack>" in status["message"]
    assert "1 more kept: python -m ops backup list" in status["message"]


class Unreachable(DirStore):
    async def list(self, prefix: str) -> list[ObjectInfo]:
        raise StoreUnavailable("the store answered 503")


async def test_a_store_that_fails_is_shown_not_raised(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    snapshots = SnapshotManager(Unreachable(root), KEY, make_state(tmp_path / "state"), keep=3)
    state = UpgradeState()
    state.read(snapshots)
    status = await read(state)
    assert status["state"] == "unknown"
    assert "the kept snapshots could not be read: the store answered 503" in status["message"]
