"""Bad stack config gives one clear message per problem, all at once."""

from __future__ import annotations

import pytest

from infra.settings import SettingsError
from tests.infra.harness import run_program_full

pytestmark = pytest.mark.timeout(60)


def problems(stack: str, overrides: dict[str, str | None], **kw: object) -> list[str]:
    with pytest.raises(SettingsError) as err:
        run_program_full(stack, overrides, **kw)  # type: ignore[arg-type]
    return err.value.problems


def test_every_problem_is_reported_in_one_error() -> None:
    found = problems(
        "dev",
        {
            "adminEmails": '["you@example.com", "not-an-email"]',
            "instanceType": "huge-9",
            "modelPrimary": "claude-sonnet",
            "maxInstances": "50",
        },
    )
    assert len(found) == 4, found
    text = "\n".join(found)
    assert "moltworker:adminEmails: 'not-an-email' is not an email address" in text
    assert "moltworker:instanceType: 'huge-9' is not a Containers instance type" in text
    assert "lite, basic, standard-1" in text
    assert "moltworker:modelPrimary: 'claude-sonnet' is not in provider/model form" in text
    assert "moltworker:maxInstances: 50 is outside 1..10" in text


def test_bad_fallback_model_and_duplicates() -> None:
    found = problems(
        "dev", {"modelFallbacks": '["openai/gpt-5-mini", "gpt4", "anthropic/claude-sonnet-4-5"]'}
    )
    assert any("'gpt4' is not in provider/model form" in p for p in found), found
    assert any("'anthropic/claude-sonnet-4-5' is listed twice" in p for p in found), found


def test_prod_stack_cannot_be_ephemeral() -> None:
    found = problems("prod", {"ephemeral": "true"})
    assert found == [
        "moltworker:ephemeral: stack 'prod' is a production stack and must keep its data; "
        "`pulumi config set ephemeral false`"
    ]


def test_plaintext_secret_is_refused_without_echoing_it() -> None:
    found = problems("dev", {}, plaintext=("anthropicApiKey", "cloudflare:apiToken"))
    assert len(found) == 2, found
    for key in ("moltworker:anthropicApiKey", "cloudflare:apiToken"):
        line = next(p for p in found if p.startswith(key))
        assert "stored in plain text" in line
        assert f"pulumi config set --secret {key}" in line
    joined = "\n".join(found)
    assert "sk-ant-TEST" not in joined and "TEST-cf-api-token" not in joined


def test_custom_domain_needs_a_zone_and_excludes_workers_dev() -> None:
    found = problems("dev", {"customDomain": "agent.example.com"})
    assert any(
        p.startswith("moltworker:zoneId: customDomain is set but zoneId is not") for p in found
    )
    assert any(p.startswith("moltworker:workersSubdomain: both customDomain and") for p in found)


def test_missing_required_values_name_the_command() -> None:
    found = problems(
        "dev",
        {
            "accountId": None,
            "workersSubdomain": None,
            "adminEmails": None,
            "cloudflare:apiToken": None,
        },
    )
    text = "\n".join(found)
    assert "moltworker:accountId: is required; `pulumi config set accountId" in text
    assert "cloudflare:apiToken: is required" in text
    assert "`pulumi config set --secret cloudflare:apiToken` (paste it at the prompt)" in text
    assert "moltworker:workersSubdomain: is required without customDomain" in text
    assert "moltworker:adminEmails: no admin is allowed through Access" in text


def test_type_errors_are_named() -> None:
    found = problems(
        "dev",
        {
            "maxInstances": "one",
            "debugRoutes": "yes",
            "adminEmails": "you@example.com",
            "sleepAfter": "ten minutes",
            "telegramDmPolicy": "everyone",
            "openclawVersion": "latest",
            "accountId": "my-account",
        },
    )
    text = "\n".join(found)
    assert "moltworker:maxInstances: 'one' is not a whole number" in text
    assert "moltworker:debugRoutes: 'yes' is not true/false" in text
    assert "moltworker:adminEmails: must be a list of strings" in text
    assert "moltworker:sleepAfter: 'ten minutes' must be like 90s, 10m, 2h (>= 1 minute)" in text
    assert "moltworker:telegramDmPolicy: 'everyone' is not one of pairing" in text
    assert "moltworker:openclawVersion: 'latest' is not an exact version" in text
    assert "moltworker:accountId: 'my-account' is not a 32-character hex account id" in text
    assert len(found) == 7, found


def test_slack_needs_both_tokens() -> None:
    found = problems("prod", {"moltworker:slackAppToken": None})
    assert len(found) == 1 and found[0].startswith("moltworker:slackAppToken: Slack needs both")


def test_missing_provider_key_is_a_warning_not_an_error() -> None:
    run = run_program_full("dev", {"moltworker:openaiApiKey": None})
    assert any(
        "moltworker:openaiApiKey is not set but openai/gpt-5-mini" in w for w in run.warnings
    )


def test_sleep_after_must_be_at_least_a_minute() -> None:
    found = problems("dev", {"sleepAfter": "30s"})
    assert found == [
        "moltworker:sleepAfter: '30s' must be like 90s, 10m, 2h (>= 1 minute) or never"
    ]


def test_overriding_the_openclaw_pin_warns() -> None:
    run = run_program_full("dev", {"openclawVersion": "2026.9.7"})
    assert any(
        "openclawVersion 2026.9.7 differs from container/openclaw.version" in w
        for w in run.warnings
    )
    assert not any("openclawVersion" in w for w in run_program_full("dev").warnings)
