"""The store interface both backends implement, and the env-driven factory.

Five operations are enough for the whole protocol: blobs and manifests are created only if
absent (so an upload can never replace data another generation references), HEAD is the only
object ever overwritten and only by compare-and-swap on its etag, and nothing is deleted except
by pruning.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from .errors import ConfigError, SnapshotError

if TYPE_CHECKING:
    from .s3store import S3Settings

# Nothing the protocol writes comes near this (chunks are 1 MiB, a manifest of 500,000 entries
# compresses well below it); a larger object is damage, refused before it is read into memory.
MAX_OBJECT_BYTES = 300 * 1024 * 1024

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class Store(Protocol):
    def describe(self) -> str:
        """Where the store points, safe to log (no credentials)."""
        ...

    async def get(self, key: str) -> StoredObject | None:
        """The object and its etag, or None when it does not exist."""
        ...

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object; False (and no change) when it already exists."""
        ...

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        """Replace the object only if its etag is `etag` (None: only if absent).

        Returns the new etag; raises HeadConflict when the condition does not hold.
        """
        ...

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; absent is fine."""
        ...


class ObjectTooLarge(SnapshotError):
    """A stored object is larger than anything the protocol writes."""


def check_size(key: str, size: int) -> None:
    if size > MAX_OBJECT_BYTES:
        raise ObjectTooLarge(f"{key} is {size} bytes, larger than any snapshot object; refused")


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid store key {key!r}")
    return key


def open_store(env: Mapping[str, str]) -> Store:
    """Build the store MOLT_STORE names; ConfigError names the missing or bad setting."""
    kind = env.get("MOLT_STORE", "").strip()
    if kind == "dir":
        from .dirstore import DirStore

        return DirStore(_store_dir(env))
    if kind == "r2":
        from .s3store import S3Store

        return S3Store(_r2_settings(env))
    if not kind:
        raise ConfigError(
            "MOLT_STORE is not set: set it to 'r2' (R2 through its S3 API) or 'dir' "
            "(a local directory, with MOLT_STORE_DIR)."
        )
    raise ConfigError(f"MOLT_STORE={kind!r} is not a store kind: use 'r2' or 'dir'.")


def _store_dir(env: Mapping[str, str]) -> Path:
    raw = env.get("MOLT_STORE_DIR", "").strip()
    if not raw:
        raise ConfigError("MOLT_STORE=dir needs MOLT_STORE_DIR: set it to an absolute directory.")
    path = Path(raw)
    if not path.is_absolute():
        raise ConfigError(f"MOLT_STORE_DIR={raw!r} is relative: set it to an absolute directory.")
    if not path.is_dir():
        # A missing store directory is more likely an unmounted volume than a first boot;
        # treating it as empty would start the agent with no state.
        raise ConfigError(
            f"MOLT_STORE_DIR={raw!r} does not exist or is not a directory: create it "
            "(mkdir -p) or point MOLT_STORE_DIR at the existing store."
        )
    return path


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _r2_settings(env: Mapping[str, str]) -> S3Settings:
    from .s3store import S3Settings

    missing = [
        name
        for name in ("R2_ENDPOINT", "R2_BUCKET", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY")
        if not env.get(name, "").strip()
    ]
    if missing:
        raise ConfigError(
            f"MOLT_STORE=r2 needs {', '.join(missing)}: set them in the container env."
        )
    endpoint = env["R2_ENDPOINT"].strip().rstrip("/")
    url = urlsplit(endpoint)
    if url.scheme not in ("https", "http") or not url.hostname or url.path or url.query:
        raise ConfigError(
            "R2_ENDPOINT must be a bare URL like https://<account>.r2.cloudflarestorage.com "
            "(no path, no query)."
        )
    if url.scheme == "http" and not _is_loopback(url.hostname):
        raise ConfigError(
            "R2_ENDPOINT uses plain http to a non-loopback host: use https (plain http is only "
            "accepted for a local test server on 127.0.0.1/localhost)."
        )
    bucket = env["R2_BUCKET"].strip()
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"R2_BUCKET={bucket!r} is not a valid bucket name: 3-63 lowercase letters, digits "
            "and hyphens."
        )
    key_id = env["R2_ACCESS_KEY_ID"].strip()
    secret = env["R2_SECRET_ACCESS_KEY"].strip()
    for name, value in (("R2_ACCESS_KEY_ID", key_id), ("R2_SECRET_ACCESS_KEY", secret)):
        if value.startswith(("http://", "https://")) or value.startswith("R2_"):
            # Values are never echoed: only the shape that gave the mix-up away.
            raise ConfigError(
                f"{name} looks like a URL or a variable name, not a credential: check that "
                "the R2 settings are not swapped."
            )
    return S3Settings(
        endpoint=endpoint, bucket=bucket, access_key_id=key_id, secret_access_key=secret
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
