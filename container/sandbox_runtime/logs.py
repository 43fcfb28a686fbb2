"""Logging for the runtime: every line is redacted, printed to stderr and kept in a ring.

The redactor is driven by the actual secret values from the environment, so a secret leaks
neither through the runtime's own messages nor through anything the gateway prints.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
RING_LINES = 2000


class Redactor:
    """Replaces each known secret value (longest first, so no prefix survives) in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)


class LogRing(logging.Handler):
    """The most recent formatted (already redacted) lines, for the control API."""

    def __init__(self, capacity: int = RING_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self._lock_ring = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock_ring:
            self._lines.extend(line.splitlines() or [""])

    def tail(self, count: int) -> list[str]:
        with self._lock_ring:
            if count <= 0:
                return []
            return list(self._lines)[-count:]


class RedactingFilter(logging.Filter):
    """Redacts the fully formatted message (arguments included) before any handler sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redactor(message)
        record.args = None
        return True


def setup_logging(redactor: Redactor, ring: LogRing) -> None:
    """Route every runtime logger through the redactor into stderr and the ring."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stderr = logging.StreamHandler(sys.stderr)
    redacting = RedactingFilter(redactor)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in (stderr, ring):
        handler.setFormatter(formatter)
        # The filter sits on the handlers, not a logger, so records from any library's logger
        # are redacted too.
        handler.addFilter(redacting)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
