"""A store on a local directory (the embedded default for `make dev`, and tests).

Same guarantees as the S3 store: creates are exclusive and atomic (written to a temp file, then
hard-linked into place, which fails if the name exists and never exposes a half-written object),
and HEAD is swapped under an fcntl lock after comparing its etag, with fsync + rename so a crash
leaves either the old or the new HEAD.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .errors import HeadConflict, StoreUnavailable
from .store import ObjectInfo, StoredObject, check_key, check_size

_TMP_PREFIX = ".tmp-"


class DirStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"directory store {self.root}"

    async def get(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._get, key)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put_if_absent, key, data)

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        return await asyncio.to_thread(self._put_if_match, key, data, etag)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _get(self, key: str) -> StoredObject | None:
        with self._errors(f"read {key}"):
            try:
                with open(self._path(key), "rb") as f:
                    check_size(key, os.fstat(f.fileno()).st_size)
                    data = f.read()
            except FileNotFoundError:
                return None
            return StoredObject(data, _etag(data))

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with self._errors(f"write {key}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._write_temp(path, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                tmp.unlink()
            _fsync_dir(path.parent)
            return True

    def _put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        path = self._path(key)
        with self._errors(f"write {key}"), self._locked():
            try:
                current: str | None = _etag(path.read_bytes())
            except FileNotFoundError:
                current = None
            if current != etag:
                raise HeadConflict(
                    f"{key} changed since it was read (expected {etag or 'absent'}, "
                    f"found {current or 'absent'})"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._write_temp(path, data)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            return _etag(data)

    def _list(self, prefix: str) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        with self._errors(f"list {prefix}"):
            self._check_root()
            base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
            if not base.is_dir():
                return found
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    if name.startswith(_TMP_PREFIX) or name == ".lock":
                        continue
                    full = Path(dirpath, name)
                    key = full.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        st = full.stat()
                        modified = datetime.fromtimestamp(st.st_mtime, UTC)
                        found.append(ObjectInfo(key, st.st_size, modified))
        return sorted(found, key=lambda info: info.key)

    def _delete(self, key: str) -> None:
        with self._errors(f"delete {key}"), contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def _write_temp(self, path: Path, data: bytes) -> Path:
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailable(
                f"{self.describe()} is missing (unmounted volume?): restore the directory or "
                "point MOLT_STORE_DIR at it."
            )

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            self._check_root()
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreUnavailable(f"{self.describe()}: no space left to {what}") from exc
            raise StoreUnavailable(f"{self.describe()}: cannot {what}: {exc.strerror}") from exc


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
