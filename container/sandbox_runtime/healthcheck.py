"""`python -m sandbox_runtime.healthcheck`: the image HEALTHCHECK (exit 0 when the sandbox is up).

Asks the control API's public `/healthz` on loopback; healthy means phase `ready` or `degraded`
(the supervisor is restarting the gateway itself, so the container must not be replaced).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("MOLT_CONTROL_PORT", "8788").strip() or "8788"
    if not port.isdigit():
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            body = json.loads(response.read(4096))
    except (OSError, ValueError):
        return 1
    return 0 if isinstance(body, dict) and body.get("ok") is True else 1


if __name__ == "__main__":
    sys.exit(main())
