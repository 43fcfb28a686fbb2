"""OpenClaw releases the suite installs besides the pinned one, and a way to install them early.

`REFUSING` is a real, older release whose config schema cannot take what this project renders:
2026.4.22 knows neither `gateway.publicOrigin` nor `gateway.nodes.pairing` and requires
`models.providers.<id>.models`, so `ops upgrade --to 2026.4.22` must stop before deploy with
its own `config validate` messages. (The issue also names 2026.2.19, a schema change too, but it
cannot be installed here: one of its dependencies is fetched from a git repository.)

`python -m tests.ops.openclaw_releases` installs it the way `ops upgrade` does
(`ops.upgrade.installed_openclaw`, under .cache/openclaw-versions/); scripts/check.py runs it
while the linters run, so the test finds it cached. Run alone, the test installs it itself.
"""

from __future__ import annotations

import os

REFUSING = "2026.4.22"


def main() -> None:
    from ops.upgrade import installed_openclaw

    print(installed_openclaw(REFUSING, os.environ))


if __name__ == "__main__":
    main()
