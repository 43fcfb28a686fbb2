"""Snapshots of the OpenClaw state dir: consistent, incremental, encrypted, verified.

    store = open_store(os.environ)
    manager = SnapshotManager(store=store, key=key_from_env(os.environ), state_dir=...)
    await manager.restore()            # before the gateway starts; raises rather than start empty
    async with manager.watch(debounce_s=2.0):
        ...                            # gateway runs; changes are snapshotted within seconds
    await manager.snapshot("shutdown") # after the gateway stopped

See manager.py for the store layout and the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .crypto import key_from_env
from .errors import ConfigError, HeadConflict, SnapshotError, StoreUnavailable
from .manager import RestoreResult, SnapshotInfo, SnapshotManager, SnapshotStatus
from .scan import DEFAULT_EXCLUDES, DEFAULT_VOLATILE_TABLES
from .store import Store, open_store

__all__ = [
    "DEFAULT_EXCLUDES",
    "DEFAULT_VOLATILE_TABLES",
    "ConfigError",
    "HeadConflict",
    "RestoreResult",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotManager",
    "SnapshotStatus",
    "Store",
    "StoreUnavailable",
    "debounce_from_env",
    "keep_from_env",
    "key_from_env",
    "manager_from_env",
    "open_store",
]


def keep_from_env(env: Mapping[str, str]) -> int:
    raw = env.get("MOLT_SNAPSHOT_KEEP", "").strip() or "30"
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise ConfigError(f"MOLT_SNAPSHOT_KEEP={raw!r}: set it to a whole number from 1 to 10000.")
    return int(raw)


def debounce_from_env(env: Mapping[str, str]) -> float:
    raw = env.get("MOLT_SNAPSHOT_DEBOUNCE_S", "").strip() or "2"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 60.0:
        raise ConfigError(f"MOLT_SNAPSHOT_DEBOUNCE_S={raw!r}: set it to seconds from 0 to 60.")
    return value


def manager_from_env(env: Mapping[str, str], state_dir: Path) -> SnapshotManager:
    """The manager the container env describes; ConfigError names the bad setting."""
    return SnapshotManager(
        store=open_store(env), key=key_from_env(env), state_dir=state_dir, keep=keep_from_env(env)
    )
