"""The restore's swap on a state dir that cannot be renamed, and a crash at every step of it.

On the real image the state dir is a directory from an image layer, which overlayfs refuses to
rename (EXDEV); a mount point refuses with EBUSY. The image boot tests meet the real thing
(tests/container/); these tests make rename(2) of the state dir itself fail the same way and
stop the swap after each of its renames, then check that `recover()` leaves either the old
tree or the new one, whole, and nothing beside it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from sandbox_runtime.snapshots import localfs
from sandbox_runtime.snapshots.errors import SnapshotError

OLD = {"openclaw.json": b"old config", "agents/main/session.jsonl": b"old chat", "old-only": b"x"}
NEW = {"openclaw.json": b"new config", "agents/main/session.jsonl": b"new chat", "devices": b"d"}


class Crash(BaseException):
    """The process dying mid-swap: no except clause of the code under test may catch it."""


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "data" / "state"
    state.mkdir(parents=True)
    write(state, OLD)
    staging = localfs.staging_dir(state)
    write(staging, NEW)
    return state, staging


def pinned(monkeypatch: pytest.MonkeyPatch, state: Path, code: int, crash_after: int | None = None):
    """rename(2) as on an image-layer or mounted state dir, optionally dying after N renames."""
    real = os.rename
    done = [0]

    def rename(src, dst):
        if Path(src) == state:
            raise OSError(code, os.strerror(code), str(src))
        if crash_after is not None and done[0] == crash_after:
            raise Crash
        real(src, dst)
        done[0] += 1

    monkeypatch.setattr(localfs.os, "rename", rename)
    return done


def siblings(state: Path) -> list[str]:
    return sorted(p.name for p in state.parent.iterdir() if p != state)


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EBUSY])
def test_swap_replaces_the_contents_of_a_state_dir_that_cannot_be_renamed(
    monkeypatch: pytest.MonkeyPatch, layout: tuple[Path, Path], code: int
) -> None:
    state, staging = layout
    inode = state.stat().st_ino
    pinned(monkeypatch, state, code)
    localfs.swap_in(staging, state)
    assert tree(state) == NEW
    assert state.stat().st_ino == inode, "the state dir itself must stay in place"
    assert siblings(state) == []


def test_a_crash_at_any_step_of_the_entry_swap_recovers_to_one_whole_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Count the renames of a complete swap first, then die after each prefix of them.
    state = tmp_path / "count" / "state"
    state.mkdir(parents=True)
    write(state, OLD)
    staging = localfs.staging_dir(state)
    write(staging, NEW)
    counter = pinned(monkeypatch, state, errno.EXDEV)
    localfs.swap_in(staging, state)
    total = counter[0]
    monkeypatch.undo()
    assert total > 4

    outcomes = set()
    for step in range(total):
        state = tmp_path / f"crash-{step}" / "state"
        state.mkdir(parents=True)
        write(state, OLD)
        staging = localfs.staging_dir(state)
        write(staging, NEW)
        pinned(monkeypatch, state, errno.EXDEV, crash_after=step)
        with pytest.raises(Crash):
            localfs.swap_in(staging, state)
        monkeypatch.undo()
        localfs.recover(state)
        after = tree(state)
        assert after in (OLD, NEW), f"crash after rename {step}: a mixed tree {sorted(after)}"
        assert siblings(state) == [], f"crash after rename {step}: leftovers {siblings(state)}"
        outcomes.add("new" if after == NEW else "old")
    # Before the commit point the old tree comes back, after it the new one is finished.
    assert outcomes == {"old", "new"}


def test_an_entry_that_cannot_move_aside_undoes_the_swap_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, layout: tuple[Path, Path]
) -> None:
    state, staging = layout
    real = os.rename

    def rename(src, dst):
        if Path(src) == state or Path(src) == state / "old-only":
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src))
        real(src, dst)

    monkeypatch.setattr(localfs.os, "rename", rename)
    with pytest.raises(SnapshotError, match="image layer"):
        localfs.swap_in(staging, state)
    monkeypatch.undo()
    assert tree(state) == OLD
    assert siblings(state) == [staging.name]  # the manager removes its staging dir itself


def test_the_whole_directory_swap_still_renames_where_it_can(layout: tuple[Path, Path]) -> None:
    state, staging = layout
    staged = staging.stat().st_ino
    localfs.swap_in(staging, state)
    assert tree(state) == NEW
    assert state.stat().st_ino == staged
    assert siblings(state) == []
