"""Serves the moltworker policy pack to the Pulumi engine (`pulumi preview --policy-pack policies`).

Only the engine runs this file: constructing `PolicyPack` starts the analyzer server and never
returns. Tests import `policies.rules` and `policies.pack` instead.
"""

import sys
from pathlib import Path

# The engine runs the pack with this directory on sys.path; the validators import as the
# `policies` package (as the tests import them), so the project root takes its place, and no
# module here can shadow a library module of the same name.
_PACK_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACK_DIR]
sys.path.insert(0, str(_PACK_DIR.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
)
