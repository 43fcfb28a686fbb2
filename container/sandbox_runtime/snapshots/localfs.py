"""Writing a verified generation next to the state dir and swapping it in atomically.

The live state dir is only ever moved aside after the staging tree is complete and fsynced, and
the aside copy is removed only after the new tree is in place. A crash in between leaves marked
siblings of the state dir, and `recover()` finishes or undoes the swap on the next boot, so local
state is never lost to a restore that did not finish.

Two ways to swap, the second when the state dir itself cannot be renamed: a directory that
comes from an image layer (overlayfs answers EXDEV) or a mount point (EBUSY).

* Whole directory: rename the state dir to `.<name>.old-<t>`, rename staging in, remove old.
* Entries: move the state dir's entries into `.<name>.drain-<t>`, rename the complete staging
  dir `.<name>.restore-<t>` to `.<name>.incoming-<t>` (the commit point), move its entries into
  the state dir, remove both. Before the commit point `recover()` moves the drained entries
  back; after it, it moves the remaining incoming entries in.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path

from .errors import SnapshotError

# rename(2) of the state dir itself fails with these where it is an image-layer directory on
# overlayfs or a mount point; its entries, created at run time, can still be moved.
_UNRENAMEABLE = frozenset({errno.EXDEV, errno.EBUSY})


def _sibling(state_dir: Path, role: str, token: str) -> Path:
    return state_dir.parent / f".{state_dir.name}.{role}-{token}"


def _siblings(state_dir: Path, role: str) -> dict[str, Path]:
    prefix = f".{state_dir.name}.{role}-"
    return {p.name[len(prefix) :]: p for p in state_dir.parent.glob(f"{prefix}*")}


def staging_dir(state_dir: Path) -> Path:
    path = _sibling(state_dir, "restore", secrets.token_hex(4))
    path.mkdir(mode=0o700)
    return path


def recover(state_dir: Path) -> None:
    """Finish or undo what an interrupted restore left behind."""
    parent = state_dir.parent
    if not parent.is_dir():
        raise SnapshotError(f"the state dir's parent {parent} does not exist; create it first")
    drains = _siblings(state_dir, "drain")
    for incoming in _siblings(state_dir, "incoming").values():
        # Past the commit point: the incoming tree was complete and verified, finish moving it.
        _move_entries(incoming, state_dir)
        incoming.rmdir()
        fsync_dir(parent)
    for token, leftover in _siblings(state_dir, "restore").items():
        drain = drains.get(token)
        if drain is not None and drain.exists():
            # Before the commit point: put the drained entries back where they were.
            _move_entries(drain, state_dir)
            drain.rmdir()
            fsync_dir(parent)
        remove_tree(leftover)
    for drain in drains.values():
        # A finished entry swap whose drained (replaced) entries were not removed yet.
        remove_tree(drain)
    aside = sorted(_siblings(state_dir, "old").values(), key=lambda p: p.stat().st_mtime)
    if aside and not state_dir.exists():
        os.rename(aside.pop(), state_dir)
        fsync_dir(parent)
    for stale in aside:
        # The state dir exists, so these were replaced by a verified generation already.
        remove_tree(stale)


def swap_in(staging: Path, state_dir: Path) -> None:
    parent = state_dir.parent
    if not state_dir.exists():
        os.rename(staging, state_dir)
        fsync_dir(parent)
        return
    aside = _sibling(state_dir, "old", secrets.token_hex(4))
    try:
        os.rename(state_dir, aside)
    except OSError as exc:
        if exc.errno not in _UNRENAMEABLE:
            raise
        _swap_entries(staging, state_dir)
        return
    try:
        os.rename(staging, state_dir)
    except OSError:
        os.rename(aside, state_dir)
        raise
    fsync_dir(parent)
    remove_tree(aside)


def _swap_entries(staging: Path, state_dir: Path) -> None:
    parent = state_dir.parent
    token = staging.name.rsplit("-", 1)[-1]
    drain = _sibling(state_dir, "drain", token)
    drain.mkdir(mode=0o700)
    try:
        _move_entries(state_dir, drain)
        fsync_dir(drain)
        fsync_dir(state_dir)
    except OSError as exc:
        _move_entries(drain, state_dir)
        drain.rmdir()
        raise SnapshotError(
            f"cannot move the entries of {state_dir} aside for the restore ({exc}); nothing "
            "inside the state dir may come from an image layer"
        ) from exc
    incoming = _sibling(state_dir, "incoming", token)
    os.rename(staging, incoming)
    fsync_dir(parent)
    _move_entries(incoming, state_dir)
    fsync_dir(state_dir)
    incoming.rmdir()
    fsync_dir(parent)
    remove_tree(drain)


def _move_entries(source: Path, target: Path) -> None:
    for name in sorted(os.listdir(source)):
        os.rename(source / name, target / name)


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
