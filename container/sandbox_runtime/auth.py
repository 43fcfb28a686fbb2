"""Verification of the short-lived control-API tokens the Worker mints (HS256, PyJWT)."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

AUDIENCE = "moltworker-control"
ISSUER = "moltworker-worker"
MAX_LIFETIME_S = 300
LEEWAY_S = 30
_MAX_TOKEN_BYTES = 4096


class Unauthorized(Exception):
    """The request carries no valid token; the reason is for the runtime's log only."""


@dataclass(frozen=True)
class Caller:
    subject: str


class TokenVerifier:
    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the control secret must be at least 32 bytes")
        self._key = secret.encode()

    def verify_header(self, header: str | None) -> Caller:
        if not header:
            raise Unauthorized("no Authorization header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_BYTES:
            raise Unauthorized("Authorization is not a Bearer token")
        return self.verify(token.strip())

    def verify(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        exp, iat, sub = claims["exp"], claims["iat"], claims["sub"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise Unauthorized("exp/iat are not numbers")
        # A stolen long-lived token must not work: the Worker mints them per request.
        if exp - iat > MAX_LIFETIME_S:
            raise Unauthorized("token lifetime exceeds the cap")
        if not isinstance(sub, str) or not sub or len(sub) > 320:
            raise Unauthorized("sub is missing or not an identity")
        return Caller(subject=sub)
