"""The runtime and the Worker agree on which container variables are secrets.

Both sides list them (Python cannot import TypeScript); this keeps the two lists from drifting,
which would either leave a secret unredacted in the runtime's logs or never pass it to the
container.
"""

from __future__ import annotations

import re
from pathlib import Path

from sandbox_runtime.settings import SECRET_VARS

ENV_TS = Path(__file__).resolve().parents[2] / "worker" / "src" / "env.ts"


def worker_list(name: str) -> list[str]:
    match = re.search(rf"export const {name} = \[(.*?)\] as const;", ENV_TS.read_text(), re.S)
    assert match, f"{ENV_TS} no longer declares {name} as a const array"
    return re.findall(r'"([A-Z0-9_]+)"', match.group(1))


def test_worker_passes_exactly_the_secrets_the_runtime_redacts() -> None:
    assert sorted(worker_list("CONTAINER_SECRET_NAMES")) == sorted(SECRET_VARS)


def test_no_secret_is_passed_as_a_plain_var() -> None:
    assert not set(worker_list("CONTAINER_VAR_NAMES")) & set(SECRET_VARS)
