"""The one error type commands raise, and the redactor every line of output passes through."""

from __future__ import annotations

import sys
from typing import TextIO

REDACTED = "[redacted]"
# Short values (a counter, "true") would redact ordinary words; secrets are never this short.
_MIN_SECRET_LEN = 8


class OpsError(Exception):
    """A failure the user can fix: the message names the problem and the fix, nothing secret."""


class Redactor:
    """Replaces every registered secret value in text before it reaches a terminal or file."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN:
                self._secrets.add(value)

    def __call__(self, text: str) -> str:
        # Longest first so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


class Console:
    """stdout/stderr behind the redactor; commands print only through this."""

    def __init__(
        self, redactor: Redactor, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.redact = redactor
        self._out = out
        self._err = err

    def print(self, text: str = "") -> None:
        print(self.redact(text), file=self._out or sys.stdout, flush=True)

    def warn(self, text: str) -> None:
        print(self.redact(text), file=self._err or sys.stderr, flush=True)
