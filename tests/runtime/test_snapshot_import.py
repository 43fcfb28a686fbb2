"""Importing `openclaw backup create` archives: real ones from the real CLI, and hostile ones."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from sandbox_runtime.snapshots import SnapshotError, open_store
from sandbox_runtime.snapshots.cli import import_archive, main
from sandbox_runtime.snapshots.manager import SnapshotManager
from snapshot_helpers import KEY, tree

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = (
    Path(__file__).parent / "fixtures" / "snapshots" / "openclaw-2026.9.6-gateway-backup.tar.gz"
)
STATE_SOURCE = "/srv/openclaw/state"
ARCHIVE_ROOT = "2026-11-21T23-28-58.444+00-00-openclaw-backup"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "store").mkdir()
    return {
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(tmp_path / "store"),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(KEY).decode(),
    }


async def restore(env: dict[str, str], target: Path) -> None:
    manager = SnapshotManager(store=open_store(env), key=KEY, state_dir=target)
    result = await manager.restore()
    assert result.snapshot is not None and not result.fell_back


async def test_imports_a_real_gateway_backup(env: dict[str, str], tmp_path: Path) -> None:
    # Made once with `openclaw backup create` from the state a real `openclaw gateway run`
    # (2026.9.6) wrote; see docs/snapshots.md.
    report, info = await import_archive(env, FIXTURE)
    assert info is not None and info.reason.startswith("import ")
    assert report.runtime_version == "2026.9.6" and report.sqlite == 1
    restored = tmp_path / "restored"
    await restore(env, restored)
    with tarfile.open(FIXTURE) as tar:
        member = next(m for m in tar if m.name.endswith("/state/openclaw.sqlite"))
        stream = tar.extractfile(member)
        assert stream is not None
        (tmp_path / "original.sqlite").write_bytes(stream.read())
    # Same rows (the bytes differ only in the header's change counter: the snapshot reads
    # databases through SQLite's backup API).
    db = sqlite3.connect(restored / "state" / "openclaw.sqlite")
    original = sqlite3.connect(tmp_path / "original.sqlite")
    assert list(db.iterdump()) == list(original.iterdump())
    original.close()
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT role FROM schema_meta WHERE meta_key = 'primary'").fetchone() == (
        "global",
    )
    db.close()
    assert (restored / "config-journal-fingerprint.key").stat().st_size == 32
    # Importing the same archive again records nothing new.
    assert (await import_archive(env, FIXTURE))[1] is None


@pytest.mark.openclaw
async def test_imports_an_archive_made_by_the_real_cli_now(
    env: dict[str, str], tmp_path: Path
) -> None:
    tools = json.loads((ROOT / ".cache" / "tools.json").read_text())
    state = tmp_path / "oc-state"
    (state / "credentials").mkdir(parents=True, mode=0o700)
    (state / "credentials" / "telegram.json").write_text('{"token": "x"}')
    (state / "credentials" / "telegram.json").chmod(0o600)
    (state / "workspace").mkdir()
    (state / "workspace" / "MEMORY.md").write_text("remember the milk\n")
    (state / "notes.bin").write_bytes(os.urandom(300_000))
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    run_env = {
        "PATH": f"{Path(tools['node']).parent}:{os.environ['PATH']}",
        "HOME": str(home),
        "OPENCLAW_STATE_DIR": str(state),
    }
    done = subprocess.run(
        [tools["openclaw"], "backup", "create", "--output", str(out), "--json", "--verify"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    archive = next(out.glob("*.tar.gz"))
    report, info = await import_archive(env, archive)
    assert info is not None and report.files == 3
    restored = tmp_path / "restored"
    await restore(env, restored)
    assert tree(restored) == tree(state)
    assert (restored / "credentials" / "telegram.json").stat().st_mode & 0o777 == 0o600


def build_archive(
    path: Path,
    members: list[tuple[tarfile.TarInfo, bytes | None]],
    *,
    manifest: dict[str, object] | None = None,
    root: str = ARCHIVE_ROOT,
) -> Path:
    body = manifest or {
        "schemaVersion": 1,
        "createdAt": "2026-11-21T23:28:58.444Z",
        "archiveRoot": root,
        "runtimeVersion": "2026.9.6",
        "assets": [
            {
                "kind": "state",
                "sourcePath": STATE_SOURCE,
                "archivePath": f"{root}/payload/posix{STATE_SOURCE}",
            }
        ],
    }
    raw = json.dumps(body).encode()
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo(f"{root}/manifest.json")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


PAYLOAD = f"{ARCHIVE_ROOT}/payload/posix{STATE_SOURCE}"
GOOD = file_member(f"{PAYLOAD}/openclaw.json", b"{}")

MALICIOUS: dict[str, tuple[list[tuple[tarfile.TarInfo, bytes | None]], str]] = {
    "traversal": ([GOOD, file_member(f"{PAYLOAD}/../../../../../../escape", b"x")], "\\.\\."),
    "absolute": ([GOOD, file_member("/tmp/escape-abs", b"x")], "absolute"),
    "symlink": (
        [GOOD, special_member(f"{PAYLOAD}/link", tarfile.SYMTYPE, "/etc/passwd")],
        "symlink",
    ),
    "hardlink": (
        [GOOD, special_member(f"{PAYLOAD}/hard", tarfile.LNKTYPE, "/etc/passwd")],
        "hardlink",
    ),
    "device": ([GOOD, special_member(f"{PAYLOAD}/dev", tarfile.CHRTYPE)], "special file"),
    "fifo": ([GOOD, special_member(f"{PAYLOAD}/fifo", tarfile.FIFOTYPE)], "special file"),
    "duplicate": ([GOOD, GOOD], "twice"),
    "second root": ([GOOD, file_member("other-root/x", b"x")], "top-level"),
    "outside payload": ([GOOD, file_member(f"{ARCHIVE_ROOT}/extra.sh", b"x")], "neither"),
    "corrupt database": (
        [
            GOOD,
            file_member(f"{PAYLOAD}/state/openclaw.sqlite", b"SQLite format 3\0" + b"\xff" * 4080),
        ],
        "database",
    ),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
async def test_rejects_malicious_archives(env: dict[str, str], tmp_path: Path, case: str) -> None:
    members, reason = MALICIOUS[case]
    archive = build_archive(tmp_path / "evil.tar.gz", members)
    with pytest.raises(SnapshotError, match=reason):
        await import_archive(env, archive)
    assert list((tmp_path / "store").rglob("*")) == []  # nothing reached the store
    assert not Path("/tmp/escape-abs").exists()
    assert not list(tmp_path.rglob("escape*"))


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ({"schemaVersion": 2, "archiveRoot": ARCHIVE_ROOT, "assets": []}, "schemaVersion"),
        ({"schemaVersion": 1, "archiveRoot": "other", "assets": []}, "archiveRoot"),
        ({"schemaVersion": 1, "archiveRoot": ARCHIVE_ROOT, "assets": []}, "0 state assets"),
        (
            {
                "schemaVersion": 1,
                "archiveRoot": ARCHIVE_ROOT,
                "assets": [
                    {"kind": "state", "sourcePath": "/a", "archivePath": f"{PAYLOAD}"},
                ],
            },
            "does not match",
        ),
    ],
)
async def test_rejects_bad_backup_manifests(
    env: dict[str, str], tmp_path: Path, manifest: dict[str, object], reason: str
) -> None:
    archive = build_archive(tmp_path / "bad.tar.gz", [GOOD], manifest=manifest)
    with pytest.raises(SnapshotError, match=reason):
        await import_archive(env, archive)


async def test_rejects_oversized_and_truncated_archives(
    env: dict[str, str], tmp_path: Path
) -> None:
    big = build_archive(tmp_path / "big.tar.gz", [file_member(f"{PAYLOAD}/big", b"0" * 100_000)])
    with pytest.raises(SnapshotError, match="expands to more than"):
        await import_archive(env, big, max_bytes=50_000)
    data = FIXTURE.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match="not a readable"):
        await import_archive(env, cut)


def test_cli_lists_and_imports(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(FIXTURE)], env) == 0
    assert "imported as snapshot" in capsys.readouterr().out
    assert main(["list"], env) == 0
    listed = capsys.readouterr().out
    assert "import openclaw-2026.9.6-gateway-backup.tar.gz" in listed
    assert main(["import", "/nonexistent.tar.gz"], env) == 1
    assert "is not a file" in capsys.readouterr().err
    assert main(["list"], {}) == 1
    assert "MOLT_STORE is not set" in capsys.readouterr().err


@pytest.mark.openclaw
async def test_openclaw_backup_verify_can_vet_the_archive_first(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = json.loads((ROOT / ".cache" / "tools.json").read_text())
    monkeypatch.setenv("PATH", f"{Path(tools['node']).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    openclaw = Path(tools["openclaw"])
    _report, info = await import_archive(env, FIXTURE, openclaw=openclaw)
    assert info is not None
    members, _reason = MALICIOUS["corrupt database"]
    bad = build_archive(tmp_path / "bad-db.tar.gz", members)
    with pytest.raises(SnapshotError, match="openclaw backup verify` refused"):
        await import_archive(env, bad, openclaw=openclaw)
