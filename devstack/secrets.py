"""The local run's credentials.

The runtime's secrets (gateway token, control key, CDP secret, snapshot key) come from the
runtime's own launcher, `scripts/dev.py` (`local_secrets()`: generated once into
.cache/local/secrets.json, mode 0600, reused on every start), so `make dev` and
`python scripts/dev.py` share one identity and one snapshot store: the snapshot key decrypts
what the other saved, and a paired browser keeps working. The one credential only the Worker
needs, LOCAL_ADMIN_TOKEN, is kept next to it in its own 0600 file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import stat
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DEV_SCRIPT = ROOT / "scripts" / "dev.py"
ADMIN_TOKEN_FILE = ROOT / ".cache" / "local" / "admin-token"
RUNTIME_SECRETS = (
    "OPENCLAW_GATEWAY_TOKEN",
    "MOLT_CONTROL_SECRET",
    "MOLT_CDP_SECRET",
    "MOLT_SNAPSHOT_KEY",
)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,256}$")


class SecretsError(Exception):
    pass


def runtime_launcher() -> ModuleType:
    """scripts/dev.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("moltworker_dev_script", DEV_SCRIPT)
    if spec is None or spec.loader is None:
        raise SecretsError(f"{DEV_SCRIPT} cannot be loaded; restore it from git.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_secrets() -> dict[str, str]:
    """The runtime's local secrets (scripts/dev.py) plus LOCAL_ADMIN_TOKEN."""
    values = runtime_launcher().local_secrets()
    missing = [name for name in RUNTIME_SECRETS if not isinstance(values.get(name), str)]
    if missing:
        raise SecretsError(
            f"{ROOT / '.cache/local/secrets.json'} lacks {', '.join(missing)}; move the file "
            "aside to have it generated again (the saved state then stays unreadable)."
        )
    return {name: values[name] for name in RUNTIME_SECRETS} | {
        "LOCAL_ADMIN_TOKEN": admin_token(ADMIN_TOKEN_FILE)
    }


def fresh_secrets() -> dict[str, str]:
    """A new, unsaved set (tests and benchmarks): same kinds of values as the local run's."""
    import base64

    return {
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_urlsafe(32),
        "MOLT_CONTROL_SECRET": secrets.token_urlsafe(48),
        "MOLT_CDP_SECRET": secrets.token_urlsafe(32),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LOCAL_ADMIN_TOKEN": secrets.token_urlsafe(32),
    }


def admin_token(path: Path) -> str:
    """The admin token stored at `path` (mode 0600), created on first use."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretsError(
                f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`."
            )
        value = path.read_text().strip()
        if not _TOKEN_RE.fullmatch(value):
            raise SecretsError(f"{path} does not hold a token; delete it to have one generated.")
        return value
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    write_private(path, value + "\n")
    return value


def write_private(path: Path, text: str) -> None:
    """Create or replace `path` with mode 0600 from the first byte on."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
