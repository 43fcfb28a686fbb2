"""Snapshot subsystem against the directory store: round trips, refusals, pruning, watch."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import stat
import zlib
from pathlib import Path

import pytest
import sandbox_runtime.snapshots.scan as scan
from sandbox_runtime.snapshots import (
    ConfigError,
    HeadConflict,
    SnapshotError,
    SnapshotManager,
    StoreUnavailable,
    debounce_from_env,
    keep_from_env,
    key_from_env,
    manager_from_env,
    open_store,
)
from sandbox_runtime.snapshots.crypto import Cipher
from sandbox_runtime.snapshots.dirstore import DirStore
from sandbox_runtime.snapshots.kept import retain
from sandbox_runtime.snapshots.localfs import remove_tree
from sandbox_runtime.snapshots.manifest import Summary, new_manifest_id, utc_now
from sandbox_runtime.snapshots.store import ObjectInfo, StoredObject
from snapshot_helpers import (
    KEY,
    check_kept_generation_survives_pruning,
    db_rows,
    kill_rounds,
    make_state,
    manager,
    put_row,
    read_head_manifest,
    seal_manifest_raw,
    store_snapshot,
    tree,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> DirStore:
    root = tmp_path / "store"
    root.mkdir()
    return DirStore(root)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return make_state(tmp_path / "state")


def kept(state: Path) -> dict[str, bytes | None]:
    """What a snapshot of `state` must reproduce: everything but the default excludes."""
    return {
        path: data
        for path, data in tree(state).items()
        if not path.startswith(("tmp", "cache"))
        and not path.endswith(("-wal", "-shm", "-journal"))
        and path != "state/openclaw.sqlite"
    }


async def test_round_trip_restores_files_modes_and_database(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    writer = manager(store, state)
    assert (await writer.restore()).empty
    put_row(state, "b", "2")  # lands in the -wal: the backup API must still see it
    info = await writer.snapshot("test")
    assert info is not None and info.files == 4 and info.reason == "test"

    restored = tmp_path / "restored"
    result = await manager(store, restored).restore()
    assert result.snapshot == info and not result.fell_back
    assert kept(restored) == kept(state)
    assert not (restored / "state/openclaw.sqlite-wal").exists()
    assert db_rows(restored) == [("a", "1"), ("b", "2")]
    assert sqlite3.connect(restored / "state/openclaw.sqlite").execute(
        "PRAGMA integrity_check"
    ).fetchone() == ("ok",)
    assert stat.S_IMODE((restored / "credentials/token.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((restored / "credentials").stat().st_mode) == 0o700
    assert not (restored / "tmp").exists() and not (restored / "cache").exists()


async def test_sqlite_is_detected_by_header_not_name(store: DirStore, state: Path) -> None:
    db = sqlite3.connect(state / "agents" / "data.bin")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    (state / "notes.sqlite").write_text("not a database")
    writer = manager(store, state)
    await writer.restore()
    copied: list[str] = []
    original = scan._backup_sqlite

    def spy(path: Path, scratch: Path) -> Path | None:
        copied.append(path.name)
        return original(path, scratch)

    scan._backup_sqlite = spy
    try:
        await writer.snapshot("test")
    finally:
        scan._backup_sqlite = original
    assert sorted(copied) == ["data.bin", "openclaw.sqlite"]


async def test_unchanged_state_writes_nothing(store: DirStore, state: Path) -> None:
    writer = manager(store, state)
    await writer.restore()
    assert await writer.snapshot("first") is not None
    before = await store_snapshot(store)
    os.utime(state / "openclaw.json")  # a touch is not a change of content
    assert await writer.snapshot("again") is None
    assert await store_snapshot(store) == before


async def test_incremental_snapshot_uploads_only_changed_chunks(
    store: DirStore, state: Path
) -> None:
    (state / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # nine 1 MiB chunks
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("first")
    blobs_before = {i.key for i in await store.list("snapshots/blobs/")}
    with open(state / "big.bin", "r+b") as f:
        f.seek(5 * 1024 * 1024)
        f.write(b"changed")
    await writer.snapshot("second")
    new = {i.key for i in await store.list("snapshots/blobs/")} - blobs_before
    assert len(new) == 1


async def test_nothing_in_the_store_is_plaintext(store: DirStore, state: Path) -> None:
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("test")
    objects = await store_snapshot(store)
    assert len(objects) >= 4
    for key, data in objects.items():
        for needle in (
            b"openclaw.json",
            b"credentials",
            b'{"t": 1}',
            b"SQLite format 3",
            b"CREATE TABLE",
        ):
            assert needle not in data, f"{needle!r} readable in {key}"
            assert needle not in key.encode()


async def test_snapshot_before_restore_is_refused(store: DirStore, state: Path) -> None:
    with pytest.raises(SnapshotError, match="restore"):
        await manager(store, state).snapshot("test")
    assert await store.list("snapshots/") == []


async def test_empty_local_state_never_deletes_remote(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("real")
    before = await store_snapshot(store)
    for path in sorted(state.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    with pytest.raises(SnapshotError, match="no files"):
        await writer.snapshot("after wipe")
    assert await store_snapshot(store) == before
    restored = tmp_path / "again"
    await manager(store, restored).restore()
    assert db_rows(restored) == [("a", "1")]


async def test_restore_from_empty_store_keeps_local_state(store: DirStore, state: Path) -> None:
    before = tree(state)
    result = await manager(store, state).restore()
    assert result.empty and result.snapshot is None
    assert tree(state) == before


async def test_pruning_keeps_head_and_drops_unreferenced_blobs(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    writer = manager(store, state, keep=2, grace_s=0)
    await writer.restore()
    for i in range(4):
        put_row(state, "n", str(i))
        (state / "rotating.txt").write_text(f"version {i}")
        assert await writer.snapshot(f"s{i}") is not None
    listed = await writer.list()
    assert [s.reason for s in listed] == ["s3", "s2"]
    manifests = [i.key.rsplit("/", 1)[1] for i in await store.list("snapshots/manifests/")]
    assert sorted(manifests) == sorted(s.id for s in listed)
    head = await read_head_manifest(store)
    assert head.id == listed[0].id
    referenced: set[str] = set()
    for ident in manifests:
        obj = await store.get(f"snapshots/manifests/{ident}")
        assert obj is not None
        body = json.loads(zlib.decompress(Cipher(KEY).open("manifest", ident, obj.data)))
        referenced |= {b for e in body["entries"] for b in e["blobs"]}
    stored = {i.key.rsplit("/", 1)[1] for i in await store.list("snapshots/blobs/")}
    assert stored == referenced
    restored = tmp_path / "restored"
    await manager(store, restored).restore()
    assert (restored / "rotating.txt").read_text() == "version 3"


async def test_a_kept_generation_survives_pruning_until_unkept(
    store: DirStore, tmp_path: Path
) -> None:
    await check_kept_generation_survives_pruning(store, tmp_path)


async def test_only_a_stored_generation_can_be_kept(store: DirStore, state: Path) -> None:
    m = manager(store, state)
    await m.restore()
    with pytest.raises(SnapshotError, match="is not a snapshot id"):
        await m.keep_generation("../HEAD", "x")
    with pytest.raises(SnapshotError, match="missing from the store"):
        await m.keep_generation(new_manifest_id(1, utc_now()), "x")
    assert await store.list("snapshots/kept/") == []


def test_the_chain_keeps_every_kept_generation_within_heads_limit() -> None:
    def summary(generation: int) -> Summary:
        ident = new_manifest_id(generation, utc_now())
        return Summary(ident, generation, "2026-01-01T00:00:00+00:00", "r", 1, 1)

    items = [summary(g) for g in range(10, 0, -1)]  # newest first
    kept = frozenset({items[5].id, items[9].id})
    chain, dropped = retain(items, 2, kept, limit=1000)
    assert [c.generation for c in chain] == [10, 9, 5, 1]
    assert [d.generation for d in dropped] == [8, 7, 6, 4, 3, 2]
    # Past what HEAD may list, the oldest are cut; a kept one cut is not dropped (its marker
    # keeps its manifest and blobs through the sweep).
    chain, dropped = retain(items, 2, kept, limit=3)
    assert [c.generation for c in chain] == [10, 9, 5]
    assert [d.generation for d in dropped] == [8, 7, 6, 4, 3, 2]


async def test_pruning_spares_young_blobs_of_a_concurrent_writer(
    store: DirStore, state: Path
) -> None:
    writer = manager(store, state, keep=1, grace_s=3600)
    await writer.restore()
    await writer.snapshot("s0")
    stray = "f" * 64
    await store.put_if_absent(f"snapshots/blobs/{stray}", b"from another writer")
    put_row(state, "x", "y")
    await writer.snapshot("s1")
    assert await writer.sweep() == 0
    assert await store.get(f"snapshots/blobs/{stray}") is not None


async def corrupt(store: DirStore, key: str, data: bytes) -> None:
    (store.root / key).write_bytes(data)


async def two_generations(store: DirStore, state: Path) -> tuple[str, str]:
    writer = manager(store, state)
    await writer.restore()
    first = await writer.snapshot("first")
    put_row(state, "b", "2")
    second = await writer.snapshot("second")
    assert first and second
    return first.id, second.id


async def test_corrupted_blob_falls_back_to_previous_generation(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    first, second = await two_generations(store, state)
    manifest = await read_head_manifest(store)
    db_entry = next(e for e in manifest.entries if e.path == "state/openclaw.sqlite")
    key = f"snapshots/blobs/{db_entry.blobs[0]}"
    obj = await store.get(key)
    assert obj is not None
    flipped = bytearray(obj.data)
    flipped[40] ^= 0x01
    await corrupt(store, key, bytes(flipped))

    restored = tmp_path / "restored"
    result = await manager(store, restored).restore()
    assert result.snapshot is not None and result.snapshot.id == first
    assert [r.id for r in result.refused] == [second]
    assert "authentication" in result.refused[0].reason
    assert db_rows(restored) == [("a", "1")]


async def test_bad_blob_is_rewritten_by_the_next_snapshot(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    await two_generations(store, state)
    manifest = await read_head_manifest(store)
    entry = next(e for e in manifest.entries if e.path == "state/openclaw.sqlite")
    await corrupt(store, f"snapshots/blobs/{entry.blobs[0]}", b"garbage")
    restored = tmp_path / "restored"
    writer = manager(store, restored)
    await writer.restore()
    put_row(restored, "b", "2")  # back to the content whose stored blob is bad
    assert await writer.snapshot("repair") is not None
    again = tmp_path / "again"
    result = await manager(store, again).restore()
    assert not result.fell_back and db_rows(again) == [("a", "1"), ("b", "2")]


async def test_truncated_manifest_falls_back(store: DirStore, state: Path, tmp_path: Path) -> None:
    first, second = await two_generations(store, state)
    key = f"snapshots/manifests/{second}"
    obj = await store.get(key)
    assert obj is not None
    await corrupt(store, key, obj.data[: len(obj.data) // 2])
    result = await manager(store, tmp_path / "restored").restore()
    assert result.snapshot is not None and result.snapshot.id == first
    assert result.refused[0].id == second


async def test_tampered_head_falls_back_to_newest_verified_manifest(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    _first, second = await two_generations(store, state)
    obj = await store.get("snapshots/HEAD")
    assert obj is not None
    tampered = bytearray(obj.data)
    tampered[-1] ^= 0xFF
    await corrupt(store, "snapshots/HEAD", bytes(tampered))
    restored = tmp_path / "restored"
    writer = manager(store, restored)
    result = await writer.restore()
    assert result.snapshot is not None and result.snapshot.id == second
    assert result.refused[0].id == "HEAD"
    # The next snapshot replaces the damaged HEAD (compare-and-swap on what was read).
    put_row(restored, "c", "3")
    assert await writer.snapshot("after repair") is not None
    assert [s.reason for s in await writer.list()][:3] == ["after repair", "second", "first"]


async def test_head_replayed_from_another_object_is_refused(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    first, second = await two_generations(store, state)
    # A validly sealed manifest moved over HEAD must not authenticate as HEAD.
    manifest_obj = await store.get(f"snapshots/manifests/{first}")
    assert manifest_obj is not None
    await corrupt(store, "snapshots/HEAD", manifest_obj.data)
    result = await manager(store, tmp_path / "restored").restore()
    assert result.refused[0].id == "HEAD" and result.snapshot is not None
    assert result.snapshot.id == second


async def test_all_generations_bad_raises_and_keeps_local_state(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    await two_generations(store, state)
    for info in await store.list("snapshots/blobs/"):
        await corrupt(store, info.key, b"x" * 64)
    local = make_state(tmp_path / "local")
    before = tree(local)
    with pytest.raises(SnapshotError, match="not touched"):
        await manager(store, local).restore()
    assert tree(local) == before
    assert not list(local.parent.glob(".local.*"))


async def test_wrong_key_refuses_everything(store: DirStore, state: Path, tmp_path: Path) -> None:
    await two_generations(store, state)
    other = SnapshotManager(store=store, key=os.urandom(32), state_dir=tmp_path / "x")
    with pytest.raises(SnapshotError, match="MOLT_SNAPSHOT_KEY"):
        await other.restore()


def malicious_entries() -> dict[str, list[dict[str, object]]]:
    blob = Cipher(KEY).blob_id(b"owned")
    good = {"path": "ok.txt", "kind": "file", "mode": 0o600, "size": 5, "blobs": [blob]}
    return {
        "traversal": [good, {**good, "path": "../escape.txt"}],
        "nested traversal": [good, {**good, "path": "a/../../escape.txt"}],
        "absolute": [good, {**good, "path": "/tmp/escape.txt"}],
        "symlink": [
            good,
            {"path": "link", "kind": "symlink", "mode": 0o777, "size": 0, "blobs": []},
        ],
        "hardlink": [good, {**good, "path": "hard", "kind": "hardlink"}],
        "device": [good, {**good, "path": "dev", "kind": "chardev"}],
        "duplicate": [good, good],
        "size mismatch": [{**good, "size": 4}],
        "file under file": [good, {**good, "path": "ok.txt/inner"}],
    }


@pytest.mark.parametrize("case", sorted(malicious_entries()))
async def test_malicious_manifest_is_refused(
    store: DirStore, state: Path, tmp_path: Path, case: str
) -> None:
    first, _second = await two_generations(store, state)
    cipher = Cipher(KEY)
    await store.put_if_absent(
        f"snapshots/blobs/{cipher.blob_id(b'owned')}",
        cipher.seal("blob", cipher.blob_id(b"owned"), b"owned"),
    )
    # Put the crafted manifest at the head of the chain, sealed with the right key, so only
    # the content checks stand between it and the disk.
    ident = new_manifest_id(99, utc_now())
    body = {
        "format": 1,
        "id": ident,
        "generation": 99,
        "parent": None,
        "created_at": utc_now().isoformat(),
        "reason": "evil",
        "chunk_size": 4 * 1024 * 1024,
        "entries": malicious_entries()[case],
    }
    raw = zlib.compress(json.dumps(body).encode())
    await store.put_if_absent(f"snapshots/manifests/{ident}", seal_manifest_raw(raw, ident))
    await store.delete("snapshots/HEAD")  # restore now walks the listing, newest first

    sandbox = tmp_path / "deep" / "restored"
    sandbox.parent.mkdir()
    result = await manager(store, sandbox).restore()
    assert result.refused[-1].id == ident, result.refused
    assert result.snapshot is not None and result.snapshot.generation == 2
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep/escape.txt").exists()
    assert not Path("/tmp/escape.txt").exists()
    assert not (sandbox / "link").exists()
    del first


async def test_two_writers_loser_gets_conflict_and_head_is_kept(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    a = manager(store, state)
    await a.restore()
    await a.snapshot("base")
    other = tmp_path / "other"
    b = manager(store, other)
    await b.restore()
    put_row(state, "from", "a")
    winner = await a.snapshot("a wins")
    put_row(other, "from", "b")
    with pytest.raises(HeadConflict, match="another writer"):
        await b.snapshot("b loses")
    assert (await read_head_manifest(store)).id == winner.id if winner else False
    with pytest.raises(HeadConflict):
        await b.snapshot("still fenced")
    check = tmp_path / "check"
    await manager(store, check).restore()
    assert ("from", "a") in db_rows(check)


class CountingStore:
    """Wraps a store and counts every call, to prove the idle watcher makes none."""

    def __init__(self, inner: DirStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def describe(self) -> str:
        return self.inner.describe()

    async def get(self, key: str) -> StoredObject | None:
        self.calls.append(f"get {key}")
        return await self.inner.get(key)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self.calls.append(f"put {key}")
        return await self.inner.put_if_absent(key, data)

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        self.calls.append(f"cas {key}")
        return await self.inner.put_if_match(key, data, etag)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        self.calls.append(f"list {prefix}")
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        self.calls.append(f"delete {key}")
        await self.inner.delete(key)


async def test_idle_watch_makes_no_store_calls(store: DirStore, state: Path) -> None:
    counting = CountingStore(store)
    writer = SnapshotManager(store=counting, key=KEY, state_dir=state)
    await writer.restore()
    await writer.snapshot("base")
    counting.calls.clear()
    async with writer.watch(debounce_s=0.2, poll_s=0.1, max_delay_s=0.5):
        await asyncio.sleep(2.0)
    assert counting.calls == []


async def test_watch_snapshots_shortly_after_a_change(store: DirStore, state: Path) -> None:
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("base")
    async with writer.watch(debounce_s=0.2, poll_s=0.1, max_delay_s=1.0):
        put_row(state, "late", "1")
        for _ in range(300):  # generous: a loaded CI box, not a speed target
            await asyncio.sleep(0.1)
            listed = await writer.list()
            if listed[0].reason == "watch":
                break
        else:
            pytest.fail("watch did not snapshot within 30 s of a change")
    manifest = await read_head_manifest(store)
    assert manifest.reason == "watch"
    assert not writer.status().pending


async def test_unavailable_dir_store_raises(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = DirStore(root)
    root.rmdir()
    with pytest.raises(StoreUnavailable, match="missing"):
        await manager(store, tmp_path / "state").restore()


async def test_interrupted_swap_is_recovered(store: DirStore, state: Path, tmp_path: Path) -> None:
    before = tree(state)
    aside = state.parent / f".{state.name}.old-deadbeef"
    os.rename(state, aside)  # as if the runtime died between the two renames
    result = await manager(store, state).restore()
    assert result.empty and tree(state) == before


def test_open_store_validates_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MOLT_STORE is not set"):
        open_store({})
    with pytest.raises(ConfigError, match="'r2' or 'dir'"):
        open_store({"MOLT_STORE": "s3"})
    with pytest.raises(ConfigError, match="MOLT_STORE_DIR"):
        open_store({"MOLT_STORE": "dir"})
    with pytest.raises(ConfigError, match="relative"):
        open_store({"MOLT_STORE": "dir", "MOLT_STORE_DIR": "store"})
    with pytest.raises(ConfigError, match="does not exist"):
        open_store({"MOLT_STORE": "dir", "MOLT_STORE_DIR": str(tmp_path / "missing")})
    r2 = {
        "MOLT_STORE": "r2",
        "R2_ENDPOINT": "https://acct.r2.cloudflarestorage.com",
        "R2_BUCKET": "molt-data",
        "R2_ACCESS_KEY_ID": "id",
        "R2_SECRET_ACCESS_KEY": "s3cr3t-value",
    }
    assert "molt-data" in open_store(r2).describe()
    with pytest.raises(ConfigError, match="R2_BUCKET, R2_SECRET"):
        open_store({**r2, "R2_BUCKET": "", "R2_SECRET_ACCESS_KEY": ""})
    with pytest.raises(ConfigError, match="plain http"):
        open_store({**r2, "R2_ENDPOINT": "http://example.com"})
    with pytest.raises(ConfigError, match="bare URL"):
        open_store({**r2, "R2_ENDPOINT": "https://x.example/bucket"})
    with pytest.raises(ConfigError, match="not a valid bucket"):
        open_store({**r2, "R2_BUCKET": "Bad_Bucket"})
    with pytest.raises(ConfigError, match="swapped") as swapped:
        open_store({**r2, "R2_SECRET_ACCESS_KEY": "https://acct.r2.cloudflarestorage.com"})
    assert "s3cr3t" not in str(swapped.value)


def test_key_from_env_validates() -> None:
    good = base64.b64encode(os.urandom(32)).decode()
    assert len(key_from_env({"MOLT_SNAPSHOT_KEY": good})) == 32
    with pytest.raises(ConfigError, match="not set"):
        key_from_env({})
    with pytest.raises(ConfigError, match="not valid base64"):
        key_from_env({"MOLT_SNAPSHOT_KEY": "not base64!"})
    with pytest.raises(ConfigError, match="decodes to 16 bytes"):
        key_from_env({"MOLT_SNAPSHOT_KEY": base64.b64encode(os.urandom(16)).decode()})


class FlakyStore(CountingStore):
    """Fails every write while `down` is set, like a store that is briefly unreachable."""

    down = False

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        if self.down:
            raise StoreUnavailable("store down (injected)")
        return await super().put_if_absent(key, data)


async def test_watch_survives_a_store_outage(store: DirStore, state: Path) -> None:
    flaky = FlakyStore(store)
    writer = SnapshotManager(store=flaky, key=KEY, state_dir=state)
    await writer.restore()
    await writer.snapshot("base")
    flaky.down = True
    async with writer.watch(debounce_s=0.1, poll_s=0.1, max_delay_s=0.3):
        put_row(state, "during", "outage")
        for _ in range(300):
            await asyncio.sleep(0.1)
            if writer.status().last_error:
                break
        status = writer.status()
        assert status.pending and status.last_error and "injected" in status.last_error
        flaky.down = False
        for _ in range(300):
            await asyncio.sleep(0.1)
            if not writer.status().pending:
                break
        else:
            pytest.fail("watch did not retry after the store came back")
    assert ("during", "outage") in db_rows(state)
    assert (await read_head_manifest(store)).reason == "watch"
    assert writer.status().last_error is None


async def test_watch_accepts_a_debounce_longer_than_the_default_max_delay(
    store: DirStore, state: Path
) -> None:
    writer = manager(store, state)
    await writer.restore()
    async with writer.watch(debounce_s=5.0):
        await asyncio.sleep(0)


async def test_when_every_generation_in_head_is_bad_other_manifests_are_tried(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    a = manager(store, state, keep=1)
    await a.restore()
    await a.snapshot("base")
    other = tmp_path / "other"
    b = manager(store, other)
    await b.restore()
    put_row(state, "from", "a")
    winner = await a.snapshot("a wins")  # keep=1: HEAD now names only this generation
    put_row(other, "from", "b")
    with pytest.raises(HeadConflict):
        await b.snapshot("b loses")  # its manifest stays in the store, orphaned
    assert winner is not None
    manifest = await read_head_manifest(store)
    entry = next(e for e in manifest.entries if e.path == "state/openclaw.sqlite")
    await corrupt(store, f"snapshots/blobs/{entry.blobs[0]}", b"garbage")
    restored = tmp_path / "restored"
    result = await manager(store, restored).restore()
    assert [r.id for r in result.refused] == [winner.id]
    assert result.snapshot is not None and result.snapshot.reason == "b loses"
    assert ("from", "b") in db_rows(restored)


async def test_read_only_directories_round_trip_and_are_replaced_cleanly(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    locked = state / "agents" / "main" / "sealed"
    locked.mkdir()
    (locked / "keep.txt").write_text("inside a read-only dir")
    locked.chmod(0o500)
    writer = manager(store, state)
    await writer.restore()
    await writer.snapshot("read-only dir")
    restored = tmp_path / "restored"
    for _ in range(2):  # the second restore replaces a tree holding a read-only directory
        await manager(store, restored).restore()
    sealed = restored / "agents" / "main" / "sealed"
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o500
    assert (sealed / "keep.txt").read_text() == "inside a read-only dir"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    locked.chmod(0o700)
    sealed.chmod(0o700)


def renew_lease(state: Path, expires: int) -> None:
    db = sqlite3.connect(state / "state" / "openclaw.sqlite")
    db.execute(
        "CREATE TABLE IF NOT EXISTS state_leases (lease_key TEXT PRIMARY KEY, owner TEXT, "
        "expires_at INTEGER)"
    )
    db.execute(
        "INSERT OR REPLACE INTO state_leases VALUES ('gateway-owner', 'pid 7', ?)", (expires,)
    )
    db.commit()
    db.close()


async def test_lease_renewals_alone_write_nothing(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    renew_lease(state, 1000)
    counting = CountingStore(store)
    writer = SnapshotManager(store=counting, key=KEY, state_dir=state)
    await writer.restore()
    await writer.snapshot("base")
    put_row(state, "b", "2")  # a real change: learns the database's logical digest
    assert await writer.snapshot("real") is not None
    counting.calls.clear()
    for expires in (2000, 3000):
        renew_lease(state, expires)
        assert await writer.snapshot("lease only") is None
    assert counting.calls == []
    put_row(state, "c", "3")
    assert await writer.snapshot("real again") is not None
    restored = tmp_path / "restored"
    await manager(store, restored).restore()
    assert db_rows(restored) == [("a", "1"), ("b", "2"), ("c", "3")]
    # The restored copy holds no lease of the writer: its owner is gone (another container).
    db = sqlite3.connect(restored / "state" / "openclaw.sqlite")
    assert db.execute("SELECT expires_at FROM state_leases").fetchall() == []
    db.close()
    # The writer's own database is left as it was.
    db = sqlite3.connect(state / "state" / "openclaw.sqlite")
    assert db.execute("SELECT expires_at FROM state_leases").fetchall() == [(3000,)]
    db.close()


async def test_volatile_tables_are_configurable(store: DirStore, state: Path) -> None:
    renew_lease(state, 1000)
    writer = SnapshotManager(store=store, key=KEY, state_dir=state, volatile_tables=())
    await writer.restore()
    await writer.snapshot("base")
    renew_lease(state, 2000)
    assert await writer.snapshot("lease counts now") is not None


def test_remove_tree_clears_read_only_dirs_and_leaves_link_targets_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o500)
    tree = tmp_path / "tree"
    (tree / "sealed").mkdir(parents=True)
    (tree / "sealed" / "f").write_text("x")
    (tree / "sealed").chmod(0o500)
    (tree / "link").symlink_to(outside, target_is_directory=True)
    remove_tree(tree)
    assert not tree.exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o500
    outside.chmod(0o700)


async def test_sweep_removes_orphans_past_the_grace_period(
    store: DirStore, state: Path, tmp_path: Path
) -> None:
    a = manager(store, state, grace_s=0)
    await a.restore()
    await a.snapshot("base")
    other = tmp_path / "other"
    b = manager(store, other, grace_s=0)
    await b.restore()
    put_row(state, "from", "a")
    await a.snapshot("a wins")
    (other / "only-in-b.bin").write_bytes(os.urandom(3000))
    with pytest.raises(HeadConflict):
        await b.snapshot("b loses")
    assert len(await store.list("snapshots/manifests/")) == 3
    deleted = await a.sweep()
    assert deleted >= 2  # b's orphaned manifest and the blob only it referenced
    kept = sorted(i.key.rsplit("/", 1)[1] for i in await store.list("snapshots/manifests/"))
    assert kept == sorted(s.id for s in await a.list())
    restored = tmp_path / "restored"
    result = await manager(store, restored).restore()
    assert not result.fell_back and not (restored / "only-in-b.bin").exists()


def test_env_settings_are_validated(tmp_path: Path) -> None:
    assert keep_from_env({}) == 30 and debounce_from_env({}) == 2.0
    assert keep_from_env({"MOLT_SNAPSHOT_KEEP": "5"}) == 5
    for bad in ("0", "-1", "ten", "1.5"):
        with pytest.raises(ConfigError, match="MOLT_SNAPSHOT_KEEP"):
            keep_from_env({"MOLT_SNAPSHOT_KEEP": bad})
    for bad in ("-1", "soon", "61"):
        with pytest.raises(ConfigError, match="MOLT_SNAPSHOT_DEBOUNCE_S"):
            debounce_from_env({"MOLT_SNAPSHOT_DEBOUNCE_S": bad})
    (tmp_path / "store").mkdir()
    env = {
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(tmp_path / "store"),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(KEY).decode(),
        "MOLT_SNAPSHOT_KEEP": "7",
    }
    assert manager_from_env(env, tmp_path / "state").keep == 7


async def test_leftover_staging_dirs_are_cleaned(store: DirStore, state: Path) -> None:
    leftover = state.parent / f".{state.name}.restore-0badc0de"
    (leftover / "half").mkdir(parents=True)
    before = tree(state)
    await manager(store, state).restore()
    assert not leftover.exists() and tree(state) == before


async def test_kill_9_during_snapshots_loses_nothing_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    env = {
        "MOLT_STORE": "dir",
        "MOLT_STORE_DIR": str(tmp_path / "store"),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(KEY).decode(),
    }
    await kill_rounds(env, tmp_path)


async def test_oversized_objects_are_refused_before_reading(
    store: DirStore, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox_runtime.snapshots.store as store_module

    writer = manager(store, state)
    await writer.restore()
    first = await writer.snapshot("small")
    (state / "big.bin").write_bytes(os.urandom(200_000))
    await writer.snapshot("with a big chunk")
    assert first is not None
    monkeypatch.setattr(store_module, "MAX_OBJECT_BYTES", 100_000)
    result = await manager(store, tmp_path / "restored").restore()
    assert result.snapshot == first
    assert "larger than any snapshot object" in result.refused[0].reason
