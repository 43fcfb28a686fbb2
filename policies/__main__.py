"""Serves the moltworker policy pack to the Pulumi engine (`pulumi preview --policy-pack policies`).

Only the engine runs this file: constructing `PolicyPack` starts the analyzer server and never
returns. Tests import `policies.rules` and `policies.pack` instead.
"""

import importlib.util
import sys
from pathlib import Path

# The engine runs this file with the pack's directory on sys.path, where each module here would
# be a top-level module (and could shadow a library's). The validators import each other as the
# `policies` package, as the tests import them, so this directory is registered under that name
# whatever the directory is called, and taken off sys.path.
_PACK_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACK_DIR]
# The rules shared with the program live in the repository's `contract` package. The project's
# virtual environment installs it; outside it (requirements.txt only) the repository root,
# appended last so it shadows nothing installed, still provides it.
sys.path.append(str(_PACK_DIR.parent))
_spec = importlib.util.spec_from_file_location(
    "policies", _PACK_DIR / "__init__.py", submodule_search_locations=[str(_PACK_DIR)]
)
assert _spec is not None and _spec.loader is not None
_package = importlib.util.module_from_spec(_spec)
sys.modules["policies"] = _package
_spec.loader.exec_module(_package)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
)
