"""`backup list | download | restore | import` against a local S3-compatible server, with the
snapshots written by the runtime's own snapshot manager."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from ops_fakes import Cli
from ops_s3_refusal import refusing_s3
from sandbox_runtime.snapshots import SnapshotManager, open_store

pytestmark = pytest.mark.s3

ROOT = Path(__file__).resolve().parents[2]
OPENCLAW_BACKUP = ROOT / "tests/runtime/fixtures/snapshots/openclaw-2026.9.6-gateway-backup.tar.gz"
KEY = base64.b64encode(bytes(range(32))).decode()
KEY_ID = "AKIDOPS0TEST0KEY0ID"
SECRET = "r2-secret-do-not-print-0a1b2c3d"


def outputs(tmp_path: Path, endpoint: str, bucket: str, **extra: str) -> Path:
    values = {
        "workerUrl": "https://moltworker-dev.example.workers.dev",
        "r2Endpoint": endpoint,
        "bucket": bucket,
        "r2AccessKeyId": KEY_ID,
        "r2SecretAccessKey": SECRET,
        "snapshotKey": KEY,
        **extra,
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(values))
    return path


def manager(endpoint: str, bucket: str, state: Path) -> SnapshotManager:
    env = {
        "MOLT_STORE": "r2",
        "R2_ENDPOINT": endpoint,
        "R2_BUCKET": bucket,
        "R2_ACCESS_KEY_ID": KEY_ID,
        "R2_SECRET_ACCESS_KEY": SECRET,
    }
    return SnapshotManager(store=open_store(env), key=base64.b64decode(KEY), state_dir=state)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def seeded(tmp_path: Path, moto_endpoint: str, make_bucket: Callable[[], str]):
    """Two generations written by the runtime's manager: (bucket, [older_id, newer_id], trees)."""
    bucket = make_bucket()
    state = tmp_path / "runtime" / "state"
    state.parent.mkdir()

    async def write() -> tuple[list[str], list[dict[str, bytes]]]:
        m = manager(moto_endpoint, bucket, state)
        await m.restore()
        (state / "agents" / "main").mkdir(parents=True)
        (state / "openclaw.json").write_text('{"gateway": {"mode": "local"}}\n')
        (state / "agents" / "main" / "notes.md").write_text("first version\n")
        (state / "blob.bin").write_bytes(bytes(range(256)) * 64)
        first = await m.snapshot("first")
        older = tree(state)
        (state / "agents" / "main" / "notes.md").write_text("second version\n")
        (state / "blob.bin").unlink()
        second = await m.snapshot("second")
        assert first is not None and second is not None
        return [first.id, second.id], [older, tree(state)]

    ids, trees = asyncio.run(write())
    return bucket, ids, trees


def no_secrets(text: str) -> None:
    assert SECRET not in text
    assert KEY not in text
    assert KEY_ID not in text


def test_list_shows_time_and_size_newest_first(
    cli: Cli, tmp_path: Path, moto_endpoint: str, seeded
) -> None:
    bucket, (older, newer), _ = seeded
    run = cli(
        "backup",
        "list",
        "--stack",
        "dev",
        "--outputs-file",
        str(outputs(tmp_path, moto_endpoint, bucket)),
    )
    assert run.code == 0, run.text
    lines = run.out.splitlines()
    assert lines[1].startswith(newer) and lines[1].endswith("second  (HEAD)")
    assert lines[2].startswith(older) and "16.0 KiB" in lines[2]
    no_secrets(run.text)


def test_keep_marks_a_generation_until_unkeep(
    cli: Cli, tmp_path: Path, moto_endpoint: str, seeded
) -> None:
    bucket, (older, newer), _ = seeded
    args = ("--stack", "dev", "--outputs-file", str(outputs(tmp_path, moto_endpoint, bucket)))
    run = cli("backup", "keep", older, *args, "--reason", "before the upgrade")
    assert run.code == 0, run.text
    assert f"snapshot {older} is kept: pruning leaves it until" in run.out
    assert "(it already was)" in cli("backup", "keep", older, *args).out
    lines = cli("backup", "list", *args).out.splitlines()
    assert lines[1].startswith(newer) and lines[1].endswith("second  (HEAD)")
    assert lines[2].startswith(older) and lines[2].endswith("first  (kept)")
    refused = cli("backup", "keep", "not-an-id", *args)
    assert refused.code != 0 and "is not one of the 2 kept generations" in refused.text
    run = cli("backup", "unkeep", older, *args)
    assert run.code == 0 and "is no longer kept" in run.out, run.text
    assert "was not kept; nothing changed" in cli("backup", "unkeep", older, *args).out
    assert "(kept)" not in cli("backup", "list", *args).out
    no_secrets(run.text)


def test_download_is_an_ordinary_safe_archive(
    cli: Cli, tmp_path: Path, moto_endpoint: str, seeded
) -> None:
    bucket, (older, _), (older_tree, _) = seeded
    target = tmp_path / "older.tar.gz"
    path = outputs(tmp_path, moto_endpoint, bucket)
    run = cli(
        "backup",
        "download",
        older,
        "--stack",
        "dev",
        "--outputs-file",
        str(path),
        "--output",
        str(target),
    )
    assert run.code == 0, run.text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with tarfile.open(target, "r:gz") as archive:
        members = archive.getmembers()
        assert all(m.isfile() or m.isdir() for m in members)
        assert all(not m.name.startswith("/") and ".." not in m.name.split("/") for m in members)
        assert all(m.uid == 0 and m.uname == "" for m in members)
        out = tmp_path / "untarred"
        archive.extractall(out, filter="data")
    assert tree(out) == older_tree
    # Never overwrites an existing file.
    again = cli(
        "backup",
        "download",
        older,
        "--stack",
        "dev",
        "--outputs-file",
        str(path),
        "--output",
        str(target),
    )
    assert again.code == 1
    assert "already exists" in again.err
    no_secrets(run.text + again.text)


def test_restore_makes_an_older_generation_current(
    cli: Cli, tmp_path: Path, moto_endpoint: str, seeded
) -> None:
    bucket, (older, newer), (older_tree, _) = seeded
    path = outputs(tmp_path, moto_endpoint, bucket)
    refused = cli("backup", "restore", older, "--stack", "dev", "--outputs-file", str(path))
    assert refused.code == 1
    assert "re-run with --yes" in refused.err
    run = cli("backup", "restore", older, "--stack", "dev", "--outputs-file", str(path), "--yes")
    assert run.code == 0, run.text
    assert "Restart the container" in run.out

    async def boot() -> tuple[dict[str, bytes], list[str]]:
        state = tmp_path / "fresh" / "state"
        state.parent.mkdir()
        m = manager(moto_endpoint, bucket, state)
        result = await m.restore()
        assert result.snapshot is not None and result.snapshot.reason == f"restore of {older}"
        return tree(state), [s.id for s in await m.list()]

    restored, chain = asyncio.run(boot())
    assert restored == older_tree
    # The newer generation is kept: the restore itself can be undone.
    assert chain[1:] == [newer, older]
    no_secrets(run.text)


def test_a_running_runtime_does_not_overwrite_a_restore(
    cli: Cli, tmp_path: Path, moto_endpoint: str, seeded
) -> None:
    bucket, (older, _), _ = seeded
    state = tmp_path / "live" / "state"
    state.parent.mkdir()
    live = manager(moto_endpoint, bucket, state)
    asyncio.run(live.restore())
    run = cli(
        "backup",
        "restore",
        older,
        "--stack",
        "dev",
        "--outputs-file",
        str(outputs(tmp_path, moto_endpoint, bucket)),
        "--yes",
    )
    assert run.code == 0, run.text
    (state / "late.txt").write_text("written after the restore\n")
    from sandbox_runtime.snapshots import HeadConflict

    with pytest.raises(HeadConflict):
        asyncio.run(live.snapshot("late"))


def test_unknown_id_and_wrong_key(cli: Cli, tmp_path: Path, moto_endpoint: str, seeded) -> None:
    bucket, _, _ = seeded
    path = outputs(tmp_path, moto_endpoint, bucket)
    run = cli(
        "backup",
        "restore",
        "00000009-1-nope",
        "--stack",
        "dev",
        "--outputs-file",
        str(path),
        "--yes",
    )
    assert run.code == 1
    assert "is not one of the 2 kept generations" in run.err
    other_key = base64.b64encode(bytes(32)).decode()
    wrong = cli(
        "backup",
        "list",
        "--stack",
        "dev",
        "--outputs-file",
        str(outputs(tmp_path, moto_endpoint, bucket, snapshotKey=other_key)),
    )
    assert wrong.code == 1
    assert wrong.err.startswith("error: ")
    assert other_key not in wrong.text


def test_import_an_openclaw_backup(
    cli: Cli, tmp_path: Path, moto_endpoint: str, make_bucket: Callable[[], str]
) -> None:
    bucket = make_bucket()
    path = outputs(tmp_path, moto_endpoint, bucket)
    run = cli(
        "backup",
        "import",
        str(OPENCLAW_BACKUP),
        "--stack",
        "dev",
        "--outputs-file",
        str(path),
        "--yes",
    )
    assert run.code == 0, run.text
    assert "OpenClaw 2026.9.6 backup" in run.out
    listed = cli("backup", "list", "--stack", "dev", "--outputs-file", str(path))
    assert f"import {OPENCLAW_BACKUP.name}  (HEAD)" in listed.out
    bad = tmp_path / "not-a-backup.tar.gz"
    bad.write_bytes(b"plain text, not gzip")
    refused = cli(
        "backup", "import", str(bad), "--stack", "dev", "--outputs-file", str(path), "--yes"
    )
    assert refused.code == 1
    assert "not a readable .tar.gz" in refused.err
    no_secrets(run.text + listed.text + refused.text)


def test_revoked_credentials_are_explained(cli: Cli, tmp_path: Path) -> None:
    with refusing_s3() as endpoint:
        run = cli(
            "backup",
            "list",
            "--stack",
            "dev",
            "--outputs-file",
            str(outputs(tmp_path, endpoint, "molt-data")),
        )
    assert run.code == 1
    assert "refused the credentials" in run.err
    assert "pulumi up --stack dev" in run.err
    no_secrets(run.text)


def test_unreachable_store(cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = outputs(tmp_path, f"http://127.0.0.1:{port}", "molt-data")
    run = cli("backup", "list", "--stack", "dev", "--outputs-file", str(path))
    assert run.code == 1
    assert "cannot read snapshots/HEAD" in run.err
    assert "EndpointConnectionError" in run.err
    no_secrets(run.text)


def test_missing_store_outputs_are_named(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"workerUrl": "https://x.example.com", "bucket": "molt-data"}))
    run = cli("backup", "list", "--stack", "prod", "--outputs-file", str(path))
    assert run.code == 1
    assert "stack output 'r2Endpoint' is missing" in run.err
