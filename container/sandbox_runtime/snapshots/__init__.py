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

from ..settings import read_snapshot_debounce, read_snapshot_keep
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


# The one parser of each setting is the runtime's settings module (load_settings reads them at
# boot); these raise its sentence for callers that build a manager from the environment alone.
def keep_from_env(env: Mapping[str, str]) -> int:
    value, problem = read_snapshot_keep(env)
    if problem:
        raise ConfigError(problem)
    return value


def debounce_from_env(env: Mapping[str, str]) -> float:
    value, problem = read_snapshot_debounce(env)
    if problem:
        raise ConfigError(problem)
    return value


def manager_from_env(env: Mapping[str, str], state_dir: Path) -> SnapshotManager:
    """The manager the container env describes; ConfigError names the bad setting."""
    return SnapshotManager(
        store=open_store(env), key=key_from_env(env), state_dir=state_dir, keep=keep_from_env(env)
    )
