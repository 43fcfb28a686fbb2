"""`backup list | download | restore | import`: the stack's snapshots, from outside the container.

Everything goes through `sandbox_runtime.snapshots` (the same code the runtime uses), reading
the bucket through its S3 API with the stack's scoped token and decrypting with the stack's
snapshot key, both taken from the stack outputs.

`import <archive>` validates a self-hosted `openclaw backup create` archive with the runtime's
own importer and stores its state as the newest generation, the same way.

`keep <id>` pins a generation so the runtime's pruning never removes it (`unkeep <id>` lets it
go again); `list` marks kept ones.

`restore <id>` records the chosen generation's files as a new generation and moves HEAD to it
with the store's conditional write. Newer generations stay in the chain, so a restore can itself
be undone. A runtime that is running keeps its own state until it next boots (its next snapshot
attempt fails on the moved HEAD and it stops snapshotting rather than overwrite the restore):
restart the container afterwards (docs/operations.md, "Roll back to a snapshot").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sandbox_runtime.snapshots import (
    HeadConflict,
    SnapshotError,
    SnapshotInfo,
    SnapshotManager,
    StoreUnavailable,
    key_from_env,
    open_store,
)
from sandbox_runtime.snapshots.cli import import_archive

from . import outputs as names
from .context import Commands, Deps, add_stack_options, run_async, stack_outputs
from .errors import Console, OpsError
from .outputs import StackOutputs


def store_env(outputs: StackOutputs) -> dict[str, str]:
    """The container env that describes the stack's store, from the stack outputs."""
    return {
        "MOLT_STORE": "r2",
        "R2_ENDPOINT": outputs.text(names.R2_ENDPOINT),
        "R2_BUCKET": outputs.text(names.R2_BUCKET),
        "R2_ACCESS_KEY_ID": outputs.text(names.R2_ACCESS_KEY_ID, secret=True),
        "R2_SECRET_ACCESS_KEY": outputs.text(names.R2_SECRET_ACCESS_KEY, secret=True),
        "MOLT_SNAPSHOT_KEY": outputs.text(names.SNAPSHOT_KEY, secret=True),
    }


@contextlib.contextmanager
def _manager(outputs: StackOutputs) -> Iterator[tuple[SnapshotManager, Path]]:
    env = store_env(outputs)
    with tempfile.TemporaryDirectory(prefix="molt-backup-") as scratch:
        try:
            manager = SnapshotManager(
                store=open_store(env),
                key=key_from_env(env),
                state_dir=Path(scratch) / "tree",
                keep=outputs.integer(names.SNAPSHOT_KEEP, 30),
            )
        except SnapshotError as exc:
            raise OpsError(f"the stack outputs do not describe a usable store: {exc}") from None
        yield manager, Path(scratch)


@contextlib.contextmanager
def _store_errors(stack: str) -> Iterator[None]:
    """Store and snapshot failures as one sentence with the fix."""
    try:
        yield
    except StoreUnavailable as exc:
        raise OpsError(
            f"{exc}. If the credentials were refused, the stack's token is expired or revoked: "
            f"`pulumi up --stack {stack}` issues the outputs again."
        ) from None
    except HeadConflict as exc:
        raise OpsError(
            f"the running runtime wrote a snapshot at the same moment ({exc}); nothing was "
            "changed: run the command again."
        ) from None
    except SnapshotError as exc:
        raise OpsError(str(exc)) from None


def _run(outputs: StackOutputs, work: Callable[[SnapshotManager, Path], Any]) -> Any:
    """Run one async operation against the store, turning store failures into OpsError."""
    with _manager(outputs) as (manager, scratch), _store_errors(outputs.stack):
        return run_async(work(manager, scratch))


async def _find(manager: SnapshotManager, ident: str, stack: str) -> SnapshotInfo:
    kept = await manager.list()
    for info in kept:
        if info.id == ident:
            return info
    raise OpsError(
        f"snapshot {ident!r} is not one of the {len(kept)} kept generations of {stack}: "
        f"list them with `python -m ops backup list --stack {stack}`."
    )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def backup_list(outputs: StackOutputs, console: Console) -> list[SnapshotInfo]:
    async def work(manager: SnapshotManager, _scratch: Path) -> list[SnapshotInfo]:
        return await manager.list()

    async def both(manager: SnapshotManager, scratch: Path) -> tuple[list[SnapshotInfo], set[str]]:
        listed = await work(manager, scratch)
        return listed, {item.id for item in await manager.kept_generations()} if listed else set()

    kept, pinned = _run(outputs, both)
    if not kept:
        console.print(f"{outputs.stack}: no snapshots yet")
        return kept
    console.print(f"{'id':<36} {'created (UTC)':<20} {'size':>10} {'files':>6}  reason")
    for index, info in enumerate(kept):
        created = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
        marks = ("  (HEAD)" if index == 0 else "") + ("  (kept)" if info.id in pinned else "")
        console.print(
            f"{info.id:<36} {created:<20} {human_size(info.size):>10} {info.files:>6}  "
            f"{info.reason}{marks}"
        )
    return kept


def backup_keep(outputs: StackOutputs, ident: str, reason: str, console: Console) -> None:
    async def work(manager: SnapshotManager, _scratch: Path) -> bool:
        await _find(manager, ident, outputs.stack)
        return await manager.keep_generation(ident, reason)

    created: bool = _run(outputs, work)
    already = "" if created else " (it already was)"
    console.print(
        f"{outputs.stack}: snapshot {ident} is kept{already}: pruning leaves it until "
        f"`python -m ops backup unkeep {ident} --stack {outputs.stack}`"
    )


def backup_unkeep(outputs: StackOutputs, ident: str, console: Console) -> None:
    async def work(manager: SnapshotManager, _scratch: Path) -> bool:
        return await manager.unkeep_generation(ident)

    if _run(outputs, work):
        console.print(f"{outputs.stack}: snapshot {ident} is no longer kept; it is pruned as usual")
    else:
        console.print(f"{outputs.stack}: snapshot {ident} was not kept; nothing changed")


def _safe_tar(tree: Path, target: Path) -> int:
    """tar.gz of regular files and directories only, relative names, no owner information."""
    count = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue  # the materialised tree has none; never archive one if it did
            info = archive.gettarinfo(str(path), arcname=path.relative_to(tree).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
                count += 1
            else:
                archive.addfile(info)
    return count


def backup_download(outputs: StackOutputs, ident: str, target: Path, console: Console) -> Path:
    if target.exists():
        raise OpsError(f"{target} already exists: choose another --output path.")

    async def work(manager: SnapshotManager, _scratch: Path) -> tuple[SnapshotInfo, int]:
        info = await _find(manager, ident, outputs.stack)
        await manager.extract(ident)
        return info, await asyncio.to_thread(_safe_tar, manager.state_dir, target)

    info, files = _run(outputs, work)
    console.print(
        f"wrote {target}: snapshot {info.id} of {outputs.stack}, {files} files "
        f"({human_size(info.size)} before compression). It holds decrypted state: keep it private."
    )
    return target


def backup_restore(outputs: StackOutputs, ident: str, console: Console) -> SnapshotInfo | None:
    async def work(manager: SnapshotManager, _scratch: Path) -> SnapshotInfo | None:
        await _find(manager, ident, outputs.stack)
        await manager.extract(ident)
        return await manager.import_tree(manager.state_dir, f"restore of {ident}")

    created: SnapshotInfo | None = _run(outputs, work)
    if created is None:
        console.print(
            f"{outputs.stack}: HEAD already holds the content of {ident}; nothing changed"
        )
    else:
        console.print(
            f"{outputs.stack}: HEAD is now {created.id}, the content of {ident} "
            f"({created.files} files). Restart the container so the runtime restores it."
        )
    return created


def backup_import(outputs: StackOutputs, archive: Path, console: Console) -> SnapshotInfo | None:
    env = {
        **store_env(outputs),
        "MOLT_SNAPSHOT_KEEP": str(outputs.integer(names.SNAPSHOT_KEEP, 30)),
    }
    with _store_errors(outputs.stack):
        report, created = asyncio.run(import_archive(env, archive))
    console.print(
        f"{archive.name}: OpenClaw {report.runtime_version or '?'} backup of "
        f"{report.created_at or '?'}, {report.files} files ({human_size(report.bytes)}), "
        f"{report.sqlite} SQLite database(s) checked"
    )
    for skipped in report.skipped_assets:
        console.print(f"  not imported: {skipped}")
    if created is None:
        console.print(
            f"{outputs.stack}: the store already holds exactly this state; nothing changed"
        )
    else:
        console.print(
            f"{outputs.stack}: HEAD is now {created.id}. Restart the container so the runtime "
            "restores it."
        )
    return created


# --- command line ----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    backup_list(stack_outputs(args, deps, console), console)
    return 0


def cmd_download(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    outputs = stack_outputs(args, deps, console)
    target = Path(args.output or f"{outputs.stack}-{args.id}.tar.gz")
    backup_download(outputs, args.id, target, console)
    return 0


def cmd_restore(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    if not args.yes:
        raise OpsError(
            "nothing changed: restoring makes the chosen snapshot the newest generation "
            "(newer ones stay listed); re-run with --yes, then restart the container."
        )
    backup_restore(stack_outputs(args, deps, console), args.id, console)
    return 0


def cmd_keep(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    backup_keep(stack_outputs(args, deps, console), args.id, args.reason, console)
    return 0


def cmd_unkeep(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    backup_unkeep(stack_outputs(args, deps, console), args.id, console)
    return 0


def cmd_import(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    if not args.yes:
        raise OpsError(
            "nothing changed: importing makes the archive's state the newest generation "
            "(older ones stay listed); re-run with --yes, then restart the container."
        )
    backup_import(stack_outputs(args, deps, console), Path(args.archive), console)
    return 0


def register(commands: Commands) -> None:
    backup = commands.add_parser(
        "backup",
        help="list, download, restore or import snapshots of a stack",
        description="The stack's encrypted snapshots in its bucket (S3 API, scoped token and "
        "snapshot key from the stack outputs).",
    )
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="kept snapshots with time and size",
        description="List kept snapshots, newest first.",
    )
    add_stack_options(listing, outputs=True)
    listing.set_defaults(handler=cmd_list)
    download = actions.add_parser(
        "download",
        help="one snapshot as a tar.gz of the decrypted files",
        description="Verify, decrypt and write one snapshot as an ordinary tar.gz (regular files "
        "and directories only, relative names), created with mode 0600.",
    )
    download.add_argument("id", help="snapshot id from `backup list`")
    add_stack_options(download, outputs=True)
    download.add_argument("--output", help="archive path (default: <stack>-<id>.tar.gz)")
    download.set_defaults(handler=cmd_download)
    restore = actions.add_parser(
        "restore",
        help="make a snapshot's content the newest generation (then restart the container)",
        description="Record the chosen snapshot's files as a new generation and move HEAD to it "
        "with a conditional write; the runtime restores it on its next boot.",
    )
    restore.add_argument("id", help="snapshot id from `backup list`")
    add_stack_options(restore, outputs=True)
    restore.add_argument("--yes", action="store_true", help="really move HEAD")
    restore.set_defaults(handler=cmd_restore)
    keep = actions.add_parser(
        "keep",
        help="pin a snapshot so pruning never removes it",
        description="Mark a kept generation so the runtime's pruning keeps it (on the chain, "
        "with its blobs) however many newer ones follow, until `backup unkeep`.",
    )
    keep.add_argument("id", help="snapshot id from `backup list`")
    add_stack_options(keep, outputs=True)
    keep.add_argument("--reason", default="kept by ops backup keep", help="shown by `list`")
    keep.set_defaults(handler=cmd_keep)
    unkeep = actions.add_parser(
        "unkeep",
        help="let a kept snapshot be pruned again",
        description="Remove a generation's kept mark; it is then pruned like any other.",
    )
    unkeep.add_argument("id", help="snapshot id from `backup list`")
    add_stack_options(unkeep, outputs=True)
    unkeep.set_defaults(handler=cmd_unkeep)
    importer = actions.add_parser(
        "import",
        help="import a self-hosted `openclaw backup create` archive as the newest generation",
        description="Validate an `openclaw backup create` archive strictly (sandbox_runtime's "
        "importer), encrypt its state and store it as the newest generation.",
    )
    importer.add_argument("archive", help="the .tar.gz that `openclaw backup create` wrote")
    add_stack_options(importer, outputs=True)
    importer.add_argument("--yes", action="store_true", help="really import")
    importer.set_defaults(handler=cmd_import)
