"""Skills shipped with the runtime, read by OpenClaw in place from the installed package.

The rendered config lists this directory in `skills.load.extraDirs`, so nothing is copied into the
agent's workspace: a first boot leaves the state dir empty until the gateway itself writes to it
(OpenClaw skips its legacy-state migration scan, about 1.5 s, only for an empty state dir), the
skill is never snapshotted, and a new image brings its new version without a copy to replace.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

SKILL_NAMES = ("cloudflare-browser",)


def skills_root() -> Path:
    """The directory holding one sub-directory per shipped skill."""
    root = Path(str(resources.files(__name__)))
    if not all((root / name / "SKILL.md").is_file() for name in SKILL_NAMES):
        # A zipped or partial install: OpenClaw could not read the skills from there.
        raise FileNotFoundError(
            f"the runtime's skills are missing under {root}; reinstall the sandbox-runtime package"
        )
    return root


def remove_workspace_copies(workspace: Path) -> list[Path]:
    """Remove the copies earlier runtime versions installed into `<workspace>/skills/<name>/`.

    A workspace skill takes precedence over an extra dir, so a stale copy restored from an old
    snapshot would hide the shipped version. Only the runtime's own skill directories are
    touched; the user's other skills stay as they are.
    """
    removed: list[Path] = []
    for name in SKILL_NAMES:
        for leftover in (workspace / "skills" / name, workspace / "skills" / f".{name}.installing"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
                removed.append(leftover)
    return removed
