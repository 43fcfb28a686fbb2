"""Client-side encryption of every stored object.

One 32-byte snapshot key (MOLT_SNAPSHOT_KEY) is expanded with HKDF into two independent keys:
one for AES-256-GCM, one for naming blobs. Blob names are HMAC-SHA256 of the plaintext under the
naming key rather than a bare SHA-256, so someone who can list the bucket cannot test whether a
known file (a public document, a common config) is among the user's data; the name still lets
identical content be stored once.

Each object gets a fresh random 96-bit nonce. The associated data binds the object's role and
name, so a valid ciphertext moved to another name (an old HEAD replayed as the new one, blob A
served as blob B) fails authentication instead of being accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError, SnapshotError

Role = Literal["blob", "manifest", "head", "kept"]

_MAGIC = b"MSN1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
OVERHEAD = len(_MAGIC) + _NONCE_BYTES + _TAG_BYTES


class DecryptError(SnapshotError):
    """An object failed authentication: corrupt, truncated, tampered or moved."""


def key_from_env(env: Mapping[str, str]) -> bytes:
    raw = env.get("MOLT_SNAPSHOT_KEY", "").strip()
    if not raw:
        raise ConfigError(
            "MOLT_SNAPSHOT_KEY is not set: set it to the base64 of 32 random bytes "
            '(python3 -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())").'
        )
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "MOLT_SNAPSHOT_KEY is not valid base64: set it to the base64 of 32 random bytes."
        ) from None
    if len(key) != 32:
        raise ConfigError(
            f"MOLT_SNAPSHOT_KEY decodes to {len(key)} bytes; it must be the base64 of exactly "
            "32 random bytes (AES-256)."
        )
    return key


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError(f"the snapshot key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(_derive(key, b"molt-snapshot/v1 aes-256-gcm"))
        self._name_key = _derive(key, b"molt-snapshot/v1 blob names")

    def blob_id(self, plaintext: bytes) -> str:
        return hmac.new(self._name_key, plaintext, hashlib.sha256).hexdigest()

    def seal(self, role: Role, name: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plaintext, _aad(role, name))

    def open(self, role: Role, name: str, sealed: bytes) -> bytes:
        if len(sealed) < OVERHEAD or not sealed.startswith(_MAGIC):
            raise DecryptError(f"{role} {name} is truncated or not a snapshot object")
        nonce = sealed[len(_MAGIC) : len(_MAGIC) + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[len(_MAGIC) + _NONCE_BYTES :], _aad(role, name))
        except InvalidTag:
            raise DecryptError(
                f"{role} {name} failed authentication (corrupt, tampered, moved, or sealed "
                "with another MOLT_SNAPSHOT_KEY)"
            ) from None

    def open_blob(self, blob_id: str, sealed: bytes) -> bytes:
        plaintext = self.open("blob", blob_id, sealed)
        if not hmac.compare_digest(self.blob_id(plaintext), blob_id):
            raise DecryptError(f"blob {blob_id} decrypted but its content does not match its name")
        return plaintext


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def _aad(role: Role, name: str) -> bytes:
    return b"molt-snapshot/v1\0" + role.encode() + b"\0" + name.encode()
