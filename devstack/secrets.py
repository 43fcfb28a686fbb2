"""The local run's credentials: one generator, two files, both 0600.

The runtime's secrets (gateway token, control key, CDP secret, snapshot key) are generated once
into .cache/local/secrets.json and reused on every start, by every mode of `python -m devstack`
(`make dev`, `--containers`, `--runtime-only`), so they share one identity and one snapshot
store: the snapshot key decrypts what another mode saved, and a paired browser keeps working.
The one credential only the Worker needs, LOCAL_ADMIN_TOKEN, is kept next to it in its own file.
`fresh_secrets()` makes the same set unsaved, for tests and benchmarks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_SECRETS_FILE = ROOT / ".cache" / "local" / "secrets.json"
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


def fresh_secrets() -> dict[str, str]:
    """A new set of every local credential (the one generator; nothing is saved)."""
    return {
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_urlsafe(32),
        "MOLT_CONTROL_SECRET": secrets.token_urlsafe(48),
        "MOLT_CDP_SECRET": secrets.token_urlsafe(32),
        "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LOCAL_ADMIN_TOKEN": secrets.token_urlsafe(32),
    }


def local_secrets() -> dict[str, str]:
    """The local run's credentials: the runtime's saved set plus LOCAL_ADMIN_TOKEN."""
    return runtime_secrets(RUNTIME_SECRETS_FILE) | {
        "LOCAL_ADMIN_TOKEN": admin_token(ADMIN_TOKEN_FILE)
    }


def runtime_secrets(path: Path) -> dict[str, str]:
    """The runtime's secrets stored at `path` (mode 0600), generated on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        values = {name: fresh_secrets()[name] for name in RUNTIME_SECRETS}
        write_private(path, json.dumps(values, indent=2) + "\n")
        return values
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretsError(
            f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`."
        )
    try:
        values = json.loads(path.read_text())
    except ValueError:
        values = None
    missing = (
        [n for n in RUNTIME_SECRETS if not isinstance(values.get(n), str) or not values[n]]
        if isinstance(values, dict)
        else list(RUNTIME_SECRETS)
    )
    if missing or not isinstance(values, dict):
        raise SecretsError(
            f"{path} lacks {', '.join(missing)}; move the file aside to have it generated again "
            "(the saved state then stays unreadable)."
        )
    return {name: values[name] for name in RUNTIME_SECRETS}


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
