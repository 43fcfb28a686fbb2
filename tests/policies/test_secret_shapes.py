"""The secret heuristics: no false alarms on the Worker's real vars, no misses on credentials."""

from __future__ import annotations

import base64
import hashlib
import random
import string

import pytest

from policies.secret_shapes import is_secret_name, secret_shape, shannon_entropy

ACCOUNT = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "name",
    [
        "OPENCLAW_GATEWAY_TOKEN",
        "MOLT_CONTROL_SECRET",
        "MOLT_SNAPSHOT_KEY",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
        "CF_ACCESS_AUD",
        "CF_ACCESS_TEAM_DOMAIN",
        "ANTHROPIC_API_KEY",
        "SLACK_APP_TOKEN",
        "DB_PASSWORD",
        "SMTP_PASS",
        "GOOGLE_CREDENTIALS",
        "signing_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "R2_ENDPOINT",
        "R2_BUCKET",
        "AI_GATEWAY_BASE_URL",
        "MODEL_PRIMARY",
        "MODEL_FALLBACKS",
        "TELEGRAM_DM_POLICY",
        "MOLT_SNAPSHOT_KEEP",
        "SLEEP_AFTER",
        "DEBUG_ROUTES",
        "KEY_PREFIX",
        "MONKEY",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "value",
    [
        f"https://{ACCOUNT}.r2.cloudflarestorage.com",
        "moltworker-prod-data",
        "moltworker-pr-1234-data",
        f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/moltworker-prod",
        "anthropic/claude-sonnet-4-5",
        "anthropic/claude-3-5-haiku-20241022",
        "openai/gpt-5,openai/gpt-5-mini,anthropic/claude-haiku-4-5",
        "pairing",
        "30",
        "10m",
        "never",
        "false",
        ACCOUNT,  # account and zone ids are 32 hex digits and not secrets
        "test-team.cloudflareaccess.com",
        "MoltworkerProductionDataBucketName",
        "registry.cloudflare.com/" + ACCOUNT + "/moltworker-prod:2026.9.6-3f2a9c1b7d4e",
    ],
)
def test_ordinary_values_are_not_secret_shaped(value: str) -> None:
    assert secret_shape(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "sk-ant-api03-" + "x1Y2z3" * 8,
        "sk-proj-" + "Ab1" * 15,
        "xoxb-1234567890-1234567890123-" + "a" * 24,
        "xapp-1-A01234567-1234567890123-" + "f" * 64,
        "7123456789:AAH" + "k" * 32,
        "ghp_" + "a1" * 18,
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl",
        "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----",
        hashlib.sha256(b"token").hexdigest(),
    ],
    ids=[
        "anthropic",
        "openai",
        "slack-bot",
        "slack-app",
        "telegram",
        "github",
        "aws",
        "jwt",
        "pem",
        "sha256",
    ],
)
def test_credential_formats_are_recognised(value: str) -> None:
    assert secret_shape(value) is not None


def test_random_keys_are_recognised_by_entropy() -> None:
    # What the program generates itself (base64 of 32 random bytes, long alphanumerics), from a
    # fixed seed so the test is the same on every run.
    rng = random.Random(20261122)  # noqa: S311 - reproducible test data, not a secret
    alphabet = string.ascii_letters + string.digits
    for _ in range(200):
        assert secret_shape(base64.b64encode(rng.randbytes(32)).decode()) is not None
        assert secret_shape(base64.urlsafe_b64encode(rng.randbytes(27)).decode()) is not None
        assert secret_shape("".join(rng.choice(alphabet) for _ in range(48))) is not None


def test_entropy_of_words_stays_low() -> None:
    assert shannon_entropy("moltworker-production-data-bucket") < 4.2
    assert shannon_entropy("") == 0.0
