"""`python -m sandbox_runtime.snapshots list | import <archive>`, configured like the runtime.

Reads MOLT_STORE, MOLT_STORE_DIR / R2_*, MOLT_SNAPSHOT_KEY and MOLT_SNAPSHOT_KEEP from the
environment. An import becomes the newest generation; a runtime that is already running will
get a HEAD conflict on its next snapshot and must be restarted to restore the imported state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import manager_from_env
from .archive import DEFAULT_MAX_BYTES, ArchiveError, UnpackReport, unpack_backup
from .errors import SnapshotError
from .manager import SnapshotInfo


async def import_archive(
    env: Mapping[str, str],
    archive: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    openclaw: Path | None = None,
) -> tuple[UnpackReport, SnapshotInfo | None]:
    """Validate an `openclaw backup create` archive and store its state as a new generation.

    With `openclaw` (the CLI's path), OpenClaw's own `backup verify` runs first as well, which
    also checks its databases' roles and registry; the runtime's own checks run either way.
    """
    if openclaw is not None:
        await asyncio.to_thread(verify_with_openclaw, openclaw, archive)
    with tempfile.TemporaryDirectory(prefix="molt-import-") as scratch:
        tree = Path(scratch) / "state"
        tree.mkdir(mode=0o700)
        report = await asyncio.to_thread(unpack_backup, archive, tree, max_bytes=max_bytes)
        manager = manager_from_env(env, tree)
        info = await manager.import_tree(tree, f"import {archive.name}"[:200])
        return report, info


def verify_with_openclaw(openclaw: Path, archive: Path) -> None:
    try:
        done = subprocess.run(  # noqa: S603 (argument list, no shell)
            [str(openclaw), "backup", "verify", "--json", str(archive.resolve())],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchiveError(f"could not run `{openclaw} backup verify`: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ArchiveError(f"`openclaw backup verify` refused the archive: {detail[0][:500]}")


async def list_snapshots(env: Mapping[str, str]) -> list[SnapshotInfo]:
    with tempfile.TemporaryDirectory(prefix="molt-list-") as scratch:
        return await manager_from_env(env, Path(scratch)).list()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox_runtime.snapshots")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the kept snapshot generations, newest first")
    importer = commands.add_parser("import", help="import an `openclaw backup create` archive")
    importer.add_argument("archive", type=Path)
    importer.add_argument(
        "--openclaw",
        type=Path,
        help="also run this OpenClaw CLI's `backup verify` on the archive first",
    )
    importer.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help="refuse archives that expand to more than this (default 8 GiB)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for info in asyncio.run(list_snapshots(env)):
                print(
                    f"{info.id}  {info.created_at.isoformat(timespec='seconds')}  "
                    f"{info.files:>6} files  {info.size:>12} bytes  {info.reason}"
                )
            return 0
        report, info = asyncio.run(
            import_archive(env, args.archive, max_bytes=args.max_bytes, openclaw=args.openclaw)
        )
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"verified {report.archive_root} (OpenClaw {report.runtime_version or 'unknown'}, "
        f"created {report.created_at}): {report.files} files, {report.bytes} bytes, "
        f"{report.sqlite} SQLite databases"
    )
    for skipped in report.skipped_assets:
        print(f"skipped (outside the state dir): {skipped}")
    if info is None:
        print("the store's newest generation already holds exactly this state; nothing written")
    else:
        print(f"imported as snapshot {info.id}; restart the runtime to restore it")
    return 0
