"""Worker settings whose default is written twice: in the Worker (which must work unset) and in
the program (which sets every var it deploys). Python cannot import TypeScript, so the Worker's
constant is read from its source."""

from __future__ import annotations

import re
from pathlib import Path

from infra.wiring import CRON_SNAPSHOT_AFTER

SCHEDULED_TS = Path(__file__).resolve().parents[2] / "worker" / "src" / "scheduled.ts"


def worker_constant(name: str) -> str:
    match = re.search(rf'export const {name} = "([^"]*)";', SCHEDULED_TS.read_text())
    assert match, f"{SCHEDULED_TS} no longer declares {name} as a string constant"
    return match.group(1)


def test_the_program_deploys_the_workers_own_cron_snapshot_default() -> None:
    assert worker_constant("CRON_SNAPSHOT_AFTER_DEFAULT") == CRON_SNAPSHOT_AFTER
