"""Writing a verified generation next to the state dir and swapping it in atomically.

The live state dir is only ever renamed aside after the staging tree is complete and fsynced,
and the aside copy is removed only after the new tree is in place. A crash in between leaves
`.<name>.old-*` beside a missing state dir; `recover()` puts it back on the next boot, so local
state is never lost to a restore that did not finish.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from .errors import SnapshotError


def staging_dir(state_dir: Path) -> Path:
    path = state_dir.parent / f".{state_dir.name}.restore-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    return path


def recover(state_dir: Path) -> None:
    """Undo what an interrupted restore left behind."""
    parent = state_dir.parent
    if not parent.is_dir():
        raise SnapshotError(f"the state dir's parent {parent} does not exist; create it first")
    for leftover in parent.glob(f".{state_dir.name}.restore-*"):
        remove_tree(leftover)
    aside = sorted(parent.glob(f".{state_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if aside and not state_dir.exists():
        os.rename(aside.pop(), state_dir)
        fsync_dir(parent)
    for stale in aside:
        # The state dir exists, so these were replaced by a verified generation already.
        remove_tree(stale)


def swap_in(staging: Path, state_dir: Path) -> None:
    parent = state_dir.parent
    aside: Path | None = None
    if state_dir.exists():
        aside = parent / f".{state_dir.name}.old-{secrets.token_hex(4)}"
        os.rename(state_dir, aside)
    try:
        os.rename(staging, state_dir)
    except OSError:
        if aside is not None:
            os.rename(aside, state_dir)
        raise
    fsync_dir(parent)
    if aside is not None:
        remove_tree(aside)


def create_file(path: Path) -> None:
    """An empty file that did not exist, not through a link (staging is ours alone)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def finish_file(path: Path, mode: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a tree we own, including directories restored read-only."""
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            full = os.path.join(root, name)
            # Linux has no lchmod (os.chmod(follow_symlinks=False) raises NotImplementedError),
            # so links are skipped explicitly: chmod through one would touch its target.
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)
