"""Measure the snapshot subsystem: loss window, idle cost, and 100 MB snapshot cost.

    .cache/venv/bin/python scripts/bench_snapshots.py [--store s3|dir] [--trials N]
        [--idle-seconds S] [--skip-size]

Everything runs locally: the S3 store is moto in server mode on 127.0.0.1 (its latency is far
below R2's, so the store-bound numbers are lower bounds), the dir store a temp directory.

1. Loss after kill -9: a writer process commits a counter row (with its wall-clock time) every
   100 ms into an SQLite db in the state dir while a runtime process restores and then runs
   `watch()` with the runtime defaults. After a random 5-15 s both are SIGKILLed at once; a
   fresh restore is compared with the local db: lost = last committed time - last restored.
2. Clean stop: the same, but the writer is stopped first and the runtime gets SIGTERM, takes
   its final snapshot and exits (what the supervisor does). Target: 0 s lost.
3. Idle: a watcher over an unchanging state dir for --idle-seconds; every store call counted,
   extrapolated to an hour. Target: zero. Then the same over the state dir of a real, idle
   `openclaw gateway run` (the pinned CLI from .cache/tools.json) for --gateway-idle-seconds,
   after its first snapshot (0 skips this part).
4. A 100 MB state (a 60 MB SQLite db + 40 MB of files): time and bytes of the first snapshot,
   then of an incremental one after a few rows and two files change, and a full restore.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from sandbox_runtime.snapshots import (
    SnapshotManager,
    debounce_from_env,
    key_from_env,
    manager_from_env,
    open_store,
)
from sandbox_runtime.snapshots.store import ObjectInfo, Store, StoredObject

HERE = Path(__file__).resolve()
ROW_INTERVAL_S = 0.1
MOTO_CREDENTIAL = "bench"  # moto accepts any credential; nothing real is involved


# ---------------------------------------------------------------- child processes


def child_writer(state: Path) -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    db = sqlite3.connect(state / "bench.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER PRIMARY KEY, at REAL)")
    n = db.execute("SELECT COALESCE(MAX(n), -1) + 1 FROM counter").fetchone()[0]
    print("WRITING", flush=True)
    while not stop:
        db.execute("INSERT INTO counter VALUES (?, ?)", (n, time.time()))
        n += 1
        time.sleep(ROW_INTERVAL_S)
    db.close()


async def child_runtime(state: Path) -> None:
    manager = manager_from_env(os.environ, state)
    await manager.restore()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    async with manager.watch(debounce_from_env(os.environ)):
        await stop.wait()
    await manager.snapshot("shutdown")
    print("STOPPED", flush=True)


# ----------------------------------------------------------------------- helpers


class CountingStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.bytes_written = 0

    def describe(self) -> str:
        return self.inner.describe()

    async def get(self, key: str) -> StoredObject | None:
        self.calls["get"] += 1
        return await self.inner.get(key)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self.calls["put_if_absent"] += 1
        created = await self.inner.put_if_absent(key, data)
        self.bytes_written += len(data) if created else 0
        return created

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        self.calls["put_if_match"] += 1
        self.bytes_written += len(data)
        return await self.inner.put_if_match(key, data, etag)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        self.calls["list"] += 1
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await self.inner.delete(key)

    def reset(self) -> None:
        self.calls.clear()
        self.bytes_written = 0


def spawn(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 (our own script, argument list)
        [sys.executable, str(HERE), *args], env=dict(env), stdout=subprocess.PIPE, text=True
    )


def wait_for(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == word:
            return
    raise SystemExit(f"child exited before printing {word} (exit {proc.wait()})")


def last_at(db_path: Path) -> float:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT MAX(at) FROM counter").fetchone()[0] or 0.0
    finally:
        db.close()


def fresh_env(
    base: Mapping[str, str], store_kind: str, endpoint: str | None, work: Path
) -> dict[str, str]:
    env = {**os.environ, **base}
    if store_kind == "dir":
        root = work / f"store-{secrets.token_hex(4)}"
        root.mkdir()
        env.update(MOLT_STORE="dir", MOLT_STORE_DIR=str(root))
    else:
        assert endpoint is not None
        bucket = f"bench-{secrets.token_hex(6)}"
        import boto3.session
        from botocore.config import Config

        boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=MOTO_CREDENTIAL,
            aws_secret_access_key=MOTO_CREDENTIAL,
            config=Config(s3={"addressing_style": "path"}),
        ).create_bucket(Bucket=bucket)
        env.update(
            MOLT_STORE="r2",
            R2_ENDPOINT=endpoint,
            R2_BUCKET=bucket,
            R2_ACCESS_KEY_ID=MOTO_CREDENTIAL,
            R2_SECRET_ACCESS_KEY=MOTO_CREDENTIAL,
        )
    return env


async def restored_last_at(env: Mapping[str, str], target: Path) -> float:
    manager = manager_from_env(env, target)
    result = await manager.restore()
    if result.fell_back:
        print(f"    restore fell back: {result.refused}")
    path = target / "bench.sqlite"
    return last_at(path) if path.exists() else 0.0


# -------------------------------------------------------------------- benchmarks


async def bench_kill(
    env_base: dict[str, str], kind: str, endpoint: str | None, work: Path, trials: int
) -> list[float]:
    rng = random.Random()  # noqa: S311 (timing jitter)
    losses: list[float] = []
    for trial in range(trials):
        env = fresh_env(env_base, kind, endpoint, work)
        state = work / f"kill-{trial}"
        runtime = spawn(["_runtime", str(state)], env)
        wait_for(runtime, "READY")
        writer = spawn(["_writer", str(state)], env)
        wait_for(writer, "WRITING")
        time.sleep(rng.uniform(5, 15))
        for proc in (writer, runtime):
            proc.send_signal(signal.SIGKILL)
        for proc in (writer, runtime):
            proc.wait()
        committed = last_at(state / "bench.sqlite")
        restored = await restored_last_at(env, work / f"kill-{trial}-restored")
        lost = max(0.0, committed - restored)
        losses.append(lost)
        print(f"  kill -9 trial {trial + 1}: lost {lost:.2f} s of writes")
    return losses


async def bench_clean_stop(
    env_base: dict[str, str], kind: str, endpoint: str | None, work: Path, trials: int
) -> list[float]:
    losses: list[float] = []
    for trial in range(trials):
        env = fresh_env(env_base, kind, endpoint, work)
        state = work / f"stop-{trial}"
        runtime = spawn(["_runtime", str(state)], env)
        wait_for(runtime, "READY")
        writer = spawn(["_writer", str(state)], env)
        wait_for(writer, "WRITING")
        time.sleep(random.uniform(3, 6))  # noqa: S311
        writer.send_signal(signal.SIGTERM)  # the gateway stops first ...
        writer.wait()
        runtime.send_signal(signal.SIGTERM)  # ... then the runtime's final snapshot
        wait_for(runtime, "STOPPED")
        runtime.wait()
        committed = last_at(state / "bench.sqlite")
        restored = await restored_last_at(env, work / f"stop-{trial}-restored")
        lost = max(0.0, committed - restored)
        losses.append(lost)
        print(f"  clean stop trial {trial + 1}: lost {lost:.2f} s of writes")
    return losses


async def bench_idle(env: Mapping[str, str], work: Path, seconds: float) -> Counter[str]:
    state = work / "idle"
    state.mkdir()
    (state / "openclaw.json").write_text("{}")
    db = sqlite3.connect(state / "bench.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE counter (n INTEGER PRIMARY KEY, at REAL)")
    db.commit()
    counting = CountingStore(open_store(env))
    manager = SnapshotManager(store=counting, key=key_from_env(env), state_dir=state)
    await manager.restore()
    await manager.snapshot("base")
    counting.reset()
    async with manager.watch(debounce_from_env(env)):
        await asyncio.sleep(seconds)
    db.close()  # held open (as the gateway holds its db) for the whole idle period
    return counting.calls


async def bench_gateway_idle(env: Mapping[str, str], work: Path, seconds: float) -> Counter[str]:
    """Store calls while a real OpenClaw gateway idles (it renews a lease every 30 s)."""
    import json
    import socket

    tools = json.loads((HERE.parent.parent / ".cache" / "tools.json").read_text())
    state, home = work / "gateway-state", work / "gateway-home"
    home.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway_env = {
        "PATH": f"{Path(tools['node']).parent}:{os.environ['PATH']}",
        "HOME": str(home),
        "OPENCLAW_STATE_DIR": str(state),
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_hex(24),
    }
    counting = CountingStore(open_store(env))
    manager = SnapshotManager(store=counting, key=key_from_env(env), state_dir=state)
    await manager.restore()
    command = [tools["openclaw"], "gateway", "run", "--port", str(port), "--bind", "loopback"]
    gateway = subprocess.Popen(  # noqa: S603 (pinned CLI, argument list)
        [*command, "--allow-unconfigured"],
        env=gateway_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with socket.socket() as client:  # ready enough once it listens; then let boot settle
            for _ in range(240):
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(20)
        async with manager.watch(debounce_from_env(env)):
            await asyncio.sleep(35)  # boot writes, and the first lease renewal, are snapshotted
            print(f"  after boot: {dict(counting.calls)} (snapshots of the boot's own writes)")
            counting.reset()
            await asyncio.sleep(seconds)
    finally:
        gateway.terminate()
        gateway.wait(60)
    return counting.calls


def make_big_state(state: Path) -> None:
    state.mkdir()
    db = sqlite3.connect(state / "big.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
    for i in range(60 * 16):  # 60 MB of 64 KiB rows
        db.execute("INSERT INTO blobs VALUES (?, ?)", (i, os.urandom(64 * 1024)))
    db.commit()
    db.close()
    files = state / "agents" / "main" / "files"
    files.mkdir(parents=True)
    for i in range(200):  # 40 MB of 200 KiB files
        (files / f"f{i:03d}.bin").write_bytes(os.urandom(200 * 1024))


async def bench_size(env: Mapping[str, str], work: Path) -> None:
    state = work / "big"
    make_big_state(state)
    total = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
    counting = CountingStore(open_store(env))
    manager = SnapshotManager(store=counting, key=key_from_env(env), state_dir=state)
    await manager.restore()
    started = time.perf_counter()
    await manager.snapshot("first")
    first_s = time.perf_counter() - started
    first_bytes, first_puts = counting.bytes_written, counting.calls["put_if_absent"]
    counting.reset()
    db = sqlite3.connect(state / "big.sqlite")
    for i in range(20):
        db.execute("INSERT INTO blobs VALUES (?, ?)", (100_000 + i, os.urandom(1024)))
    db.commit()
    db.close()
    for name in ("f007.bin", "f123.bin"):
        (state / "agents" / "main" / "files" / name).write_bytes(os.urandom(200 * 1024))
    started = time.perf_counter()
    await manager.snapshot("incremental")
    incr_s = time.perf_counter() - started
    incr_bytes, incr_puts = counting.bytes_written, counting.calls["put_if_absent"]
    started = time.perf_counter()
    await manager_from_env(env, work / "big-restored").restore()
    restore_s = time.perf_counter() - started
    mb = 1024 * 1024
    print(f"  state: {total / mb:.1f} MiB")
    for name, took, written, puts in (
        ("first snapshot:      ", first_s, first_bytes, first_puts),
        ("incremental snapshot:", incr_s, incr_bytes, incr_puts),
    ):
        print(f"  {name} {took:6.2f} s, {written / mb:7.2f} MiB written, {puts} objects")
    print(f"  full restore:         {restore_s:6.2f} s")


def summary(name: str, losses: list[float]) -> None:
    worst, middle = max(losses), statistics.median(losses)
    print(f"{name}: max {worst:.2f} s, median {middle:.2f} s over {len(losses)} trials")


async def bench(args: argparse.Namespace) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env_base = {"MOLT_SNAPSHOT_KEY": key, "MOLT_SNAPSHOT_DEBOUNCE_S": "2"}
    server = None
    endpoint = None
    if args.store == "s3":
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    work = Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
    try:
        print(f"store: {args.store}; runtime defaults: debounce 2 s, poll 0.5 s, max delay 3 s")
        print("1. kill -9 under a write every 100 ms")
        kills = await bench_kill(env_base, args.store, endpoint, work, args.trials)
        print("2. clean stop (writer stops, then SIGTERM -> final snapshot)")
        stops = await bench_clean_stop(
            env_base, args.store, endpoint, work, max(2, args.trials // 2)
        )
        print(f"3. idle for {args.idle_seconds:.0f} s")
        calls = await bench_idle(
            fresh_env(env_base, args.store, endpoint, work), work, args.idle_seconds
        )
        per_hour = sum(calls.values()) * 3600 / args.idle_seconds
        gateway_calls: Counter[str] | None = None
        if args.gateway_idle_seconds > 0:
            print(f"3b. real OpenClaw gateway idle for {args.gateway_idle_seconds:.0f} s")
            gateway_calls = await bench_gateway_idle(
                fresh_env(env_base, args.store, endpoint, work), work, args.gateway_idle_seconds
            )
        if not args.skip_size:
            print("4. 100 MB state")
            await bench_size(fresh_env(env_base, args.store, endpoint, work), work)
        print()
        summary("lost after kill -9", kills)
        summary("lost after clean stop", stops)
        idle = f"{dict(calls) or 0} in {args.idle_seconds:.0f} s"
        print(f"store calls while idle: {idle} -> {per_hour:.0f} per hour")
        if gateway_calls is not None:
            seconds = args.gateway_idle_seconds
            rate = sum(gateway_calls.values()) * 3600 / seconds
            observed = f"{dict(gateway_calls) or 0} in {seconds:.0f} s"
            print(f"store calls while a real gateway idles: {observed} -> {rate:.0f} per hour")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            server.stop()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_writer":
        child_writer(Path(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "_runtime":
        asyncio.run(child_runtime(Path(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["s3", "dir"], default="s3")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--gateway-idle-seconds", type=float, default=120.0)
    parser.add_argument("--skip-size", action="store_true")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
