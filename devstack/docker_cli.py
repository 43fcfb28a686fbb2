#!/usr/bin/env python3
"""`WRANGLER_DOCKER_BIN` for `wrangler dev` with containers: infra/docker_shim.py, plus `pull`.

`wrangler dev` always runs `docker pull <egress sidecar image>` before it starts, and the local
stack's sidecar image (devstack.egress) exists only in local storage: podman's pull asks the
registry `localhost` and fails. Docker answers the same way for a local-only tag, so this is no
gap in the shim but a need of this stack: `pull REF` of an image podman already has succeeds
without a registry, anything else goes to the shim unchanged.

Standard library only: it runs as a subprocess of wrangler, outside the project's venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHIM = Path(__file__).resolve().parent.parent / "infra" / "docker_shim.py"


def main(argv: list[str]) -> int:
    podman = os.environ.get("MOLT_PODMAN_BIN") or "podman"
    refs = [a for a in argv[1:] if not a.startswith("-")]
    if argv[:1] == ["pull"] and len(refs) == 1 and refs[0].startswith("localhost/"):
        found = subprocess.run([podman, "image", "exists", refs[0]], check=False)  # noqa: S603
        if found.returncode == 0:
            return 0
        print(f"docker_cli: {refs[0]} is not in local storage; build it first", file=sys.stderr)
        return 1
    os.execv(sys.executable, [sys.executable, str(SHIM), *argv])  # noqa: S606 - become the shim
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
