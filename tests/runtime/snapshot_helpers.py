"""Shared pieces for the snapshot tests (a plain module, so it cannot clash with a conftest)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox_runtime.snapshots import SnapshotError, SnapshotManager, open_store
from sandbox_runtime.snapshots.crypto import Cipher
from sandbox_runtime.snapshots.manifest import Manifest, decode_head, decode_manifest
from sandbox_runtime.snapshots.store import Store

KEY = bytes(range(32))


def make_state(root: Path) -> Path:
    """A small state dir shaped like OpenClaw's: a WAL-mode SQLite db, config, locks, cache."""
    (root / "state").mkdir(parents=True)
    (root / "tmp" / "openclaw-0").mkdir(parents=True)
    (root / "cache" / "control-ui-assets").mkdir(parents=True)
    (root / "agents" / "main" / "sessions").mkdir(parents=True)
    (root / "tmp" / "openclaw-0" / "gateway.lock").write_text('{"pid": 1}')
    (root / "cache" / "control-ui-assets" / "app.js").write_text("x" * 1000)
    (root / "agents" / "main" / "sessions" / "s1.jsonl").write_text('{"role":"user"}\n')
    (root / "openclaw.json").write_text('{"gateway": {}}')
    (root / "credentials").mkdir(mode=0o700)
    secret = root / "credentials" / "token.json"
    secret.write_text('{"t": 1}')
    secret.chmod(0o600)
    db = sqlite3.connect(root / "state" / "openclaw.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO kv VALUES ('a', '1')")
    db.commit()
    db.close()
    return root


def db_rows(state: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(state / "state" / "openclaw.sqlite")
    try:
        return db.execute("SELECT k, v FROM kv ORDER BY k").fetchall()
    finally:
        db.close()


def put_row(state: Path, key: str, value: str) -> None:
    db = sqlite3.connect(state / "state" / "openclaw.sqlite")
    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
    db.commit()
    db.close()


def tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> content (None for directories), for whole-tree comparisons."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in files:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


def manager(store: Store, state: Path, keep: int = 30, grace_s: float = 3600.0) -> SnapshotManager:
    return SnapshotManager(
        store=store, key=KEY, state_dir=state, keep=keep, prune_grace_s=grace_s, sweep_interval_s=0
    )


async def read_head_manifest(store: Store) -> Manifest:
    cipher = Cipher(KEY)
    head_obj = await store.get("snapshots/HEAD")
    assert head_obj is not None
    head = decode_head(cipher.open("head", "HEAD", head_obj.data))
    obj = await store.get(f"snapshots/manifests/{head.manifest}")
    assert obj is not None
    return decode_manifest(cipher.open("manifest", head.manifest, obj.data), head.manifest)


async def store_snapshot(store: Store) -> dict[str, bytes]:
    """Every object in the store, to prove an operation changed nothing."""
    found: dict[str, bytes] = {}
    for info in await store.list("snapshots/"):
        obj = await store.get(info.key)
        assert obj is not None
        found[info.key] = obj.data
    return found


def seal_manifest_raw(body: bytes, ident: str) -> bytes:
    """Seal arbitrary manifest bytes with the test key (to craft malicious generations)."""
    return Cipher(KEY).seal("manifest", ident, body)


WRITER = Path(__file__).parent / "fixtures" / "snapshots" / "writer_process.py"


async def kill_rounds(env: dict[str, str], tmp_path: Path, rounds: int = 3) -> None:
    """SIGKILL a process that snapshots after every commit, at random moments, then restore.

    Every row the writer acknowledged (after its snapshot returned) must come back, from an
    intact database, and each round continues from what the previous restore brought back.
    """
    state = tmp_path / "state"
    rng = random.Random()  # noqa: S311 (timing jitter, not security)
    acked = -1
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(state)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        target = acked + rng.randint(3, 8)
        for line in proc.stdout:
            if line.startswith("ACK"):
                acked = int(line.split()[1])
                if acked >= target:
                    break
        assert proc.poll() is None, "the writer died on its own"
        time.sleep(rng.uniform(0.0, 0.3))  # land the kill anywhere in the next cycle
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # A fresh runtime: restore into a new directory, as a new container would.
        restored = tmp_path / f"restored-{round_}"
        result = await manager(open_store(env), restored).restore()
        assert result.snapshot is not None and not result.fell_back
        db = sqlite3.connect(restored / "counter.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        last = db.execute("SELECT MAX(n) FROM counter").fetchone()[0]
        db.close()
        assert last >= acked, f"acknowledged {acked} but restored only up to {last}"
        state = restored


async def check_kept_generation_survives_pruning(store: Store, tmp_path: Path) -> None:
    """One writer keeps 2 generations while another party (ops) pins an old one: the pinned one
    stays on the chain and keeps its blobs through pruning and sweeps, until it is unkept."""
    state = make_state(tmp_path / "kept-state")
    writer = manager(store, state, keep=2, grace_s=0)
    await writer.restore()
    (state / "rotating.txt").write_text("version 0")
    pinned = await writer.snapshot("s0")
    assert pinned is not None
    # Pinned through a separate manager, as `ops backup keep` does: the writer's HEAD is stale
    # about it and it still must not lose it.
    ops = manager(store, tmp_path / "ops-scratch", keep=2, grace_s=0)
    assert await ops.keep_generation(pinned.id, "before upgrade") is True
    assert await ops.keep_generation(pinned.id, "again") is False
    for i in range(1, 5):
        put_row(state, "n", str(i))
        (state / "rotating.txt").write_text(f"version {i}")
        assert await writer.snapshot(f"s{i}") is not None
    await writer.sweep()
    assert [s.reason for s in await writer.list()] == ["s4", "s3", "s0"]
    assert [(k.id, k.reason) for k in await ops.kept_generations()] == [
        (pinned.id, "before upgrade")
    ]
    assert await ops.extract(pinned.id) > 0  # every blob of it is still stored and verifies
    assert (ops.state_dir / "rotating.txt").read_text() == "version 0"

    assert await ops.unkeep_generation(pinned.id) is True
    assert await ops.unkeep_generation(pinned.id) is False
    put_row(state, "n", "5")
    assert await writer.snapshot("s5") is not None
    await writer.sweep()
    assert [s.reason for s in await writer.list()] == ["s5", "s4"]
    assert await store.get(f"snapshots/manifests/{pinned.id}") is None
    with pytest.raises(SnapshotError, match="missing from the store"):
        await ops.keep_generation(pinned.id, "too late")
    assert await store.list("snapshots/kept/") == []
