"""A store on R2 through its S3 API (boto3), or any S3 server with conditional writes.

boto3 is synchronous, so every call runs in a worker thread. Each call is bounded by botocore's
connect/read timeouts and its standard retry mode (a few attempts with backoff); anything that
still fails becomes StoreUnavailable naming the operation, never a stack of botocore internals.
Retries are safe for this protocol: a create that succeeded but whose answer was lost comes back
as 412 (already exists, which is what we wanted), and the HEAD swap checks for that case itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import HeadConflict, StoreUnavailable
from .store import ObjectInfo, StoredObject, check_key, check_size

_CREDENTIAL_ERRORS = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "Unauthorized",
}


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str = "auto"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = 3


class S3Store:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=settings.connect_timeout_s,
                read_timeout=settings.read_timeout_s,
                retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
                # R2 rejects the aws-chunked CRC trailers newer botocore sends by default.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def describe(self) -> str:
        return f"S3 store {self.settings.endpoint}/{self.settings.bucket}"

    async def get(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._get, check_key(key))

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put_if_absent, check_key(key), data)

    async def put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        return await asyncio.to_thread(self._put_if_match, check_key(key), data, etag)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, check_key(key))

    def _get(self, key: str) -> StoredObject | None:
        try:
            answer = self.client.get_object(Bucket=self.settings.bucket, Key=key)
            try:
                check_size(key, int(answer.get("ContentLength", 0)))
                return StoredObject(answer["Body"].read(), answer["ETag"])
            finally:
                answer["Body"].close()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._unavailable("read", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("read", key, exc) from exc

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        for _attempt in range(3):
            try:
                self.client.put_object(
                    Bucket=self.settings.bucket, Key=key, Body=data, IfNoneMatch="*"
                )
                return True
            except ClientError as exc:
                if _status(exc) == 412:
                    return False
                # 409: a concurrent conditional write to the same key is in flight; its
                # outcome decides, so ask again.
                if _status(exc) == 409:
                    continue
                raise self._unavailable("write", key, exc) from exc
            except (BotoCoreError, OSError) as exc:
                raise self._unavailable("write", key, exc) from exc
        raise StoreUnavailable(f"{self.describe()}: write {key} kept conflicting; try again")

    def _put_if_match(self, key: str, data: bytes, etag: str | None) -> str:
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            answer = self.client.put_object(
                Bucket=self.settings.bucket, Key=key, Body=data, **condition
            )
            return answer["ETag"]
        except ClientError as exc:
            if _status(exc) in (409, 412) or _code(exc) == "NoSuchKey":
                # A retried request whose first attempt succeeded fails its own precondition;
                # the object then holds exactly our bytes (they carry a random nonce).
                current = self._get(key)
                if current is not None and current.data == data:
                    return current.etag
                raise HeadConflict(
                    f"{key} changed since it was read (conditional write refused)"
                ) from None
            raise self._unavailable("write", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("write", key, exc) from exc

    def _list(self, prefix: str) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(ObjectInfo(item["Key"], item["Size"], item["LastModified"]))
        except ClientError as exc:
            raise self._unavailable("list", prefix, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("list", prefix, exc) from exc
        return sorted(found, key=lambda info: info.key)

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return
            raise self._unavailable("delete", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("delete", key, exc) from exc

    def _unavailable(self, verb: str, key: str, exc: Exception) -> StoreUnavailable:
        where = f"{self.describe()}: cannot {verb} {key}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                return StoreUnavailable(
                    f"{where}: bucket {self.settings.bucket!r} does not exist; check R2_BUCKET"
                )
            if code in _CREDENTIAL_ERRORS or _status(exc) in (401, 403):
                return StoreUnavailable(
                    f"{where}: the store refused the credentials ({code}); check "
                    "R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY and the token's bucket scope"
                )
            return StoreUnavailable(f"{where}: {code} (HTTP {_status(exc)})")
        return StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
