"""Skills shipped with the runtime and installed into the agent's workspace at boot."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

SKILL_NAMES = ("cloudflare-browser",)


def install_skills(workspace: Path) -> list[Path]:
    """Copy each shipped skill into `<workspace>/skills/<name>/`, replacing an older copy.

    Only the runtime's own skill directories are touched; the user's other skills stay as they
    are.
    """
    installed: list[Path] = []
    root = resources.files(__name__)
    for name in SKILL_NAMES:
        target = workspace / "skills" / name
        staging = workspace / "skills" / f".{name}.installing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for item in root.joinpath(name).iterdir():
            if item.is_file():
                (staging / item.name).write_bytes(item.read_bytes())
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        installed.append(target)
    return installed
