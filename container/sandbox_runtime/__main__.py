"""`python -m sandbox_runtime` / `sandbox-runtime`: the container's entrypoint."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .logs import LogRing, Redactor, setup_logging
from .settings import SECRET_VARS, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from .snapshots import Store

log = logging.getLogger("supervisor")


def check_environment(env: Mapping[str, str]) -> tuple[Settings, Store, bytes]:
    """Every configuration problem at once: the runtime's own and the snapshot store's."""
    from .snapshots import SnapshotError, key_from_env, open_store

    problems: list[str] = []
    settings = store = key = None
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        key = key_from_env(env)
    except SnapshotError as exc:
        problems.append(str(exc))
    try:
        store = open_store(env)
    except SnapshotError as exc:
        problems.append(str(exc))
    if problems or settings is None or key is None or store is None:
        raise ConfigError(problems)
    return settings, store, key


def main() -> None:
    ring = LogRing()
    # Built from the raw environment before anything is validated, so even a message about a
    # bad setting cannot echo a secret.
    redactor = Redactor(os.environ.get(name, "") for name in SECRET_VARS)
    setup_logging(redactor, ring)
    try:
        settings, store, key = check_environment(os.environ)
    except ConfigError as exc:
        log.error("the sandbox cannot start; fix the configuration:")
        for problem in exc.problems:
            log.error("configuration problem: %s", problem)
        sys.exit(2)
    sys.exit(asyncio.run(boot(settings, store, key, redactor, ring)))


async def boot(
    settings: Settings, store: Store, key: bytes, redactor: Redactor, ring: LogRing
) -> int:
    from .openclaw_cli import ConfigCheck

    try:
        check = await ConfigCheck.start(settings)
    except OSError as exc:
        log.error("boot stopped: cannot render the OpenClaw config: %s", exc)
        return 2
    # Imported only now: its imports (aiohttp and the rest) take a few tenths of a second,
    # which OpenClaw's validator, already running, no longer has to wait for.
    from .supervisor import Supervisor

    return await Supervisor(settings, store, key, redactor, ring, check).run()


if __name__ == "__main__":
    main()
