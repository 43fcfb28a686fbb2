"""Does a Worker binding look like it carries a secret, by its name or by its value?

Both checks err on the side of "secret": a false alarm costs one `secret_text` binding, a miss
publishes a credential in the Worker's settings, where anyone who can read the script sees it.
Reasons never include the value itself, so a violation message cannot leak what it reports.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

# Secret names of docs/interfaces.md whose names do not say "secret" on their own.
DECLARED_SECRETS = frozenset({"CF_ACCESS_TEAM_DOMAIN", "R2_ACCESS_KEY_ID"})
# Any of these words anywhere in the name (split on "_") makes it a secret name.
_SECRET_WORDS = frozenset(
    {
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWORDS",
        "PASSWD",
        "CREDENTIAL",
        "CREDENTIALS",
        "APIKEY",
        "PRIVATE",
    }
)
# These only as the last word: `MOLT_SNAPSHOT_KEY` is a key, `KEY_PREFIX` is not.
_SECRET_LAST_WORDS = frozenset({"KEY", "KEYS", "AUD", "PASS", "PWD", "PSK", "DSN", "COOKIE"})


@dataclass(frozen=True)
class CredentialFormat:
    """One credential format: what to call it (never the value) and its pattern."""

    description: str
    pattern: re.Pattern[str]  # unanchored; `fullmatch` checks a whole pasted value
    # Found inside any value (a Worker var, the policy's scan); a format that is only a run of
    # word characters (a Cloudflare token) would match ordinary long names, so it is checked
    # only as a whole value (the preflight, ops/doctor.py) and the entropy test covers vars.
    distinctive: bool = True

    def is_whole(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


# The one table of credential formats: the policy pack scans Worker vars with it and the
# preflight (ops/doctor.py) checks each pasted secret against the format its key expects.
CREDENTIAL_FORMATS: dict[str, CredentialFormat] = {
    "anthropic": CredentialFormat(
        "an Anthropic API key (sk-ant-)", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")
    ),
    "openai": CredentialFormat(
        "an OpenAI-style API key (sk-)", re.compile(r"\bsk-(?!ant-)[A-Za-z0-9_-]{16,}")
    ),
    "slack-bot": CredentialFormat(
        "a Slack bot token (xoxb-)", re.compile(r"\bxoxb-[A-Za-z0-9-]{10,}")
    ),
    "slack-user": CredentialFormat(
        "a Slack user/legacy token (xox?-)", re.compile(r"\bxox[aposr]-[A-Za-z0-9-]{10,}")
    ),
    "slack-app": CredentialFormat(
        "a Slack app-level token (xapp-)", re.compile(r"\bxapp-[A-Za-z0-9-]{10,}")
    ),
    "telegram": CredentialFormat(
        "a Telegram bot token", re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{35}\b")
    ),
    "discord": CredentialFormat(
        "a Discord bot token",
        re.compile(r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b"),
    ),
    "github": CredentialFormat(
        "a GitHub token",
        re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
    ),
    "aws": CredentialFormat("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    "google": CredentialFormat("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    "jwt": CredentialFormat(
        "a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
    ),
    "pem": CredentialFormat("a PEM private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    "cloudflare": CredentialFormat(
        "a Cloudflare API token", re.compile(r"[A-Za-z0-9_-]{40,}"), distinctive=False
    ),
}
_KNOWN_FORMATS = tuple(f for f in CREDENTIAL_FORMATS.values() if f.distinctive)
# One opaque token (hex, base64, base64url); URLs, lists and model names contain other characters.
_OPAQUE = re.compile(r"^[A-Za-z0-9+/_=-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Random hex of 40+ digits is a hash-sized secret (an R2 S3 secret is 64); 32 hex digits are
# also the shape of Cloudflare account and zone ids, which are not secrets.
_MIN_HEX_SECRET = 40
_MIN_OPAQUE_SECRET = 24
# Bits per character: random base64 scores ~5 over 32+ characters, words joined by '-' and
# CamelCase names stay below 4.1 (measured on bucket, worker and model names of this project).
# Single-case strings (model refs with dates, slugs) can score higher, so the entropy test
# needs both letter cases, which random base64/base64url of this length has all but always.
_MIN_ENTROPY = 4.2


def is_secret_name(name: str) -> bool:
    """True when a binding's name says it holds a secret (TOKEN, SECRET, *_KEY, *_AUD, ...)."""
    upper = name.upper()
    if upper in DECLARED_SECRETS:
        return True
    words = [w for w in re.split(r"[^A-Z0-9]+", upper) if w]
    if not words:
        return False
    return any(w in _SECRET_WORDS for w in words) or words[-1] in _SECRET_LAST_WORDS


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def secret_shape(value: str) -> str | None:
    """Why the value looks like a credential (without quoting it), or None when it does not."""
    for known in _KNOWN_FORMATS:
        if known.pattern.search(value):
            return f"its value has the format of {known.description}"
    token = value.strip()
    if not _OPAQUE.match(token):
        return None
    if _HEX.match(token):
        if len(token) >= _MIN_HEX_SECRET:
            return f"its value is {len(token)} random-looking hex digits"
        return None
    mixed = any(c.isupper() for c in token) and any(c.islower() for c in token)
    if mixed and len(token) >= _MIN_OPAQUE_SECRET and shannon_entropy(token) >= _MIN_ENTROPY:
        return f"its value is a {len(token)}-character high-entropy string"
    return None
