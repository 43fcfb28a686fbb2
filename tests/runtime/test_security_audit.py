"""OpenClaw's security audit in the runtime: parsing and redaction of its output, the runs it
makes, and (marker `openclaw`) the real gateway booted with an unsafe channel policy."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from runtime_harness import Runtime, base_env, mint, secret, secret_values
from sandbox_runtime.logs import REDACTED, Redactor
from sandbox_runtime.openclaw_cli import CliResult, OpenClawCli
from sandbox_runtime.openclaw_config import render, write_config
from sandbox_runtime.security_audit import (
    AUDIT_ARGS,
    FAILED_ID,
    MAX_DETAIL,
    AuditOutputError,
    SecurityAudit,
    parse_report,
    redact_tokens,
)
from sandbox_runtime.settings import load_settings
from sandbox_runtime.supervisor import private_state_dir

pytestmark = pytest.mark.timeout(30)

GATEWAY_TOKEN = secret("gwtok")
CLEAN = Redactor([GATEWAY_TOKEN])


def report(*findings: Any, **extra: Any) -> CliResult:
    return CliResult(0, json.dumps({"summary": {}, "findings": list(findings), **extra}), "")


def finding(severity: str = "warn", **fields: Any) -> dict[str, Any]:
    return {
        "checkId": "gateway.example",
        "severity": severity,
        "title": "An example",
        "detail": "Something is set.",
        "remediation": "Unset it.",
        **fields,
    }


# ------------------------------------------------------------------------------ the output


def test_findings_are_kept_most_severe_first() -> None:
    found = parse_report(
        report(
            finding("info", checkId="summary.attack_surface", remediation=None),
            finding("warn", checkId="gateway.auth_no_rate_limit"),
            finding("critical", checkId="security.exposure.open_groups_with_elevated"),
        ),
        CLEAN,
    )
    assert [(f.severity, f.check_id) for f in found] == [
        ("critical", "security.exposure.open_groups_with_elevated"),
        ("warn", "gateway.auth_no_rate_limit"),
        ("info", "summary.attack_surface"),
    ]
    assert found[0].json() == {
        "id": "security.exposure.open_groups_with_elevated",
        "severity": "critical",
        "title": "An example",
        "detail": "Something is set.",
        "fix": "Unset it.",
    }
    assert found[2].fix is None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (CliResult(1, "", "Error: config invalid\nmore"), "exited with 1: Error: config invalid"),
        (CliResult(0, "Security audit: all good", ""), "did not print JSON"),
        (CliResult(0, json.dumps({"ok": True}), ""), "without a findings list"),
        (report("nope"), "finding 0 is not an object"),
        (report(finding(checkId="--fix")), "finding 0 has no usable checkId"),
        (report(finding(), finding("high")), "finding 1 (gateway.example) has severity 'high'"),
        (report(finding(detail=None)), "lacks a title or detail"),
        (report(finding(remediation=["a"])), "remediation that is not text"),
    ],
)
def test_output_that_is_not_a_report_is_refused(result: CliResult, message: str) -> None:
    with pytest.raises(AuditOutputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_report(result, CLEAN)


def test_a_failure_message_passes_the_redactor() -> None:
    with pytest.raises(AuditOutputError) as caught:
        parse_report(CliResult(2, "", f"cannot reach gateway with {GATEWAY_TOKEN}"), CLEAN)
    assert GATEWAY_TOKEN not in str(caught.value)
    assert REDACTED in str(caught.value)


@pytest.mark.parametrize(
    "token",
    [
        "sk-ant-api03-" + "Ab3" * 12,
        "xoxb-123456789012-abcdefABCDEF",
        "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl",
        "AKIAIOSFODNN7EXAMPLE",
        "f3a9c0d1e2b4a5968778695a4b3c2d1e0f9e8d7c",
    ],
)
def test_token_shaped_text_is_redacted(token: str) -> None:
    text = f"channels.telegram.botToken resolved to {token} from the file"
    found = parse_report(report(finding(detail=text, title=text, remediation=text)), CLEAN)[0]
    for value in (found.title, found.detail, found.fix):
        assert value is not None
        assert token not in value
        assert REDACTED in value


def test_named_values_lose_the_value_and_keep_the_name() -> None:
    assert redact_tokens('{"apiKey": "hunter2hunter2"} password=s3cr3tpass') == (
        f'{{"apiKey": "{REDACTED}"}} password={REDACTED}'
    )
    assert redact_tokens("Authorization: Bearer abcdefgh12345") == (f"Authorization: {REDACTED}")


def test_ordinary_audit_text_survives() -> None:
    text = (
        "/data/state mode=755; consider restricting to 700. Set gateway.trustedProxies, see "
        "security.exposure.open_groups_with_control_plane_tools and "
        "https://docs.openclaw.ai/gateway/multi-tenant-hosting"
    )
    assert redact_tokens(text) == text


def test_long_and_control_characters_are_bounded() -> None:
    found = parse_report(report(finding(detail="a\x1b[31m" + "b " * 5000)), CLEAN)[0]
    assert len(found.detail) == MAX_DETAIL
    assert "\x1b" not in found.detail


# --------------------------------------------------------------------------- the runs


class ScriptedCli:
    """Answers each audit with the next scripted result (or raises it), recording the calls."""

    def __init__(self, *outcomes: CliResult | BaseException, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, ...]] = []
        self.delay = delay

    async def run(self, *args: str, timeout: float = 30.0) -> CliResult:
        self.calls.append(args)
        await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_requests_during_a_run_give_exactly_one_more(tmp_path: Path) -> None:
    cli = ScriptedCli(report(finding()), delay=0.2)
    audit = SecurityAudit(cli, CLEAN, tmp_path / "openclaw.json")
    assert audit.status()["state"] == "pending"
    async with audit.running():
        audit.request("gateway ready")
        await wait_for(lambda: len(cli.calls) == 1)
        assert audit.status()["state"] == "running"
        for _ in range(3):
            audit.request("again")
        await wait_for(lambda: audit.runs == 2)
        await asyncio.sleep(0.3)
    assert audit.runs == 2
    assert cli.calls == [AUDIT_ARGS, AUDIT_ARGS]
    status = audit.status()
    assert status["state"] == "done"
    assert status["counts"] == {"critical": 0, "warn": 1, "info": 0}
    assert status["checked_at"].endswith("Z")


async def test_a_changed_config_file_starts_an_audit(tmp_path: Path) -> None:
    config = tmp_path / "openclaw.json"
    config.write_text("{}")
    cli = ScriptedCli(report())
    audit = SecurityAudit(cli, CLEAN, config, config_poll_s=0.05)
    async with audit.running():
        await asyncio.sleep(0.2)
        assert audit.runs == 0, "an unchanged config is not audited again"
        config.write_text('{"gateway": {}}')
        await wait_for(lambda: audit.runs == 1)


async def test_a_failed_audit_is_a_finding_beside_the_last_good_ones(tmp_path: Path) -> None:
    cli = ScriptedCli(
        report(finding("critical", checkId="gateway.bind_no_auth")),
        CliResult(0, "not json", ""),
    )
    audit = SecurityAudit(cli, CLEAN, tmp_path / "openclaw.json")
    await audit.run_once()
    first = audit.status()["checked_at"]
    await audit.run_once()
    status = audit.status()
    assert status["state"] == "failed"
    assert [f["id"] for f in status["findings"]] == [FAILED_ID, "gateway.bind_no_auth"]
    assert "did not print JSON" in status["findings"][0]["detail"]
    assert status["findings"][0]["severity"] == "warn"
    assert status["checked_at"] == first, "the time is that of the findings shown"


async def test_a_crash_inside_the_runtime_does_not_end_the_loop(tmp_path: Path) -> None:
    cli = ScriptedCli(RuntimeError("bug"), report())
    audit = SecurityAudit(cli, CLEAN, tmp_path / "openclaw.json")
    async with audit.running():
        audit.request("first")
        await wait_for(lambda: audit.runs == 1)
        assert audit.status()["findings"][0]["detail"].find("RuntimeError") > 0
        audit.request("second")
        await wait_for(lambda: audit.runs == 2)
    assert audit.status()["state"] == "done"


def cli_with(tmp_path: Path, launcher: str) -> OpenClawCli:
    env = base_env(tmp_path)
    env["MOLT_OPENCLAW_BIN"] = launcher
    settings = load_settings(env)
    settings.runtime_dir.mkdir(parents=True)  # the CLI's working directory, as at boot
    return OpenClawCli(settings)


async def test_an_openclaw_that_cannot_be_started_is_a_finding(tmp_path: Path) -> None:
    cli = cli_with(tmp_path, str(tmp_path / "no-such-openclaw"))
    audit = SecurityAudit(cli, CLEAN, tmp_path / "openclaw.json")
    await audit.run_once()
    status = audit.status()
    assert status["state"] == "failed"
    assert status["findings"][0]["id"] == FAILED_ID
    assert "could not be started" in status["findings"][0]["detail"]


async def test_a_hanging_audit_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    launcher = tmp_path / "openclaw"
    launcher.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 60\n')
    launcher.chmod(0o755)
    audit = SecurityAudit(
        cli_with(tmp_path, str(launcher)), CLEAN, tmp_path / "openclaw.json", timeout_s=1.0
    )
    started = time.monotonic()
    await audit.run_once()
    assert time.monotonic() - started < 10
    status = audit.status()
    assert "did not finish within 1s" in status["findings"][0]["detail"]
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ------------------------------------------------------------------- the real OpenClaw


@pytest.mark.openclaw
@pytest.mark.timeout(180)
async def test_the_deployed_shape_draws_no_rate_limit_or_state_dir_finding(tmp_path: Path) -> None:
    """The config the image renders (bind lan, the Worker's origin), judged by the real audit."""
    env = base_env(tmp_path)
    env.update({"MOLT_BIND": "lan", "MOLT_PUBLIC_ORIGIN": "https://moltworker-prod.example.dev"})
    settings = load_settings(env)
    for path in (settings.state_dir, settings.runtime_dir, tmp_path / "home"):
        path.mkdir(parents=True, exist_ok=True)
    settings.state_dir.chmod(0o755)  # what a plain mkdir leaves; the boot makes it owner-only
    private_state_dir(settings.state_dir)
    write_config(settings, render(settings))
    audit = SecurityAudit(OpenClawCli(settings), Redactor(secret_values(env)), settings.config_path)
    await audit.run_once()
    status = audit.status()
    assert status["state"] == "done", status
    severities = {f["id"]: f["severity"] for f in status["findings"]}
    assert "gateway.auth_no_rate_limit" not in severities, severities
    assert "fs.state_dir.perms_readable" not in severities, severities
    assert status["counts"]["critical"] == 0 and status["counts"]["warn"] == 0, severities
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700


# ------------------------------------------------------------------- the real gateway


async def status_of(rt: Runtime) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {mint(rt.env)}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(rt.control + "/v1/status", headers=headers) as response,
    ):
        assert response.status == 200
        return await response.json()


async def wait_audit(rt: Runtime, after: str | None = None, timeout: float = 240) -> dict[str, Any]:
    """The status once an audit newer than `after` has completed."""
    deadline = time.monotonic() + timeout
    while True:
        status = await status_of(rt)
        security = status["security"]
        if security["state"] in ("done", "failed") and security["checked_at"] != after:
            return status
        assert time.monotonic() < deadline, f"no audit after {timeout}s: {security}"
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def unsafe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    tmp = tmp_path_factory.mktemp("unsafe")
    env = base_env(tmp)
    env.update(
        {
            # Anyone who finds the bot may talk to an agent with shell and file tools. Telegram is
            # bundled with OpenClaw; Discord and Slack are plugins it would download first.
            "TELEGRAM_BOT_TOKEN": "123456789:" + secret("tg").replace("-", "_"),
            "TELEGRAM_DM_POLICY": "open",
            "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
            "ANTHROPIC_API_KEY": secret("sk-ant"),
            "MODEL_BASE_URL": "http://127.0.0.1:9/anthropic",
        }
    )
    rt = Runtime(env, tmp).start()
    try:
        rt.wait_ready()
        yield rt
    finally:
        rt.stop_all(graceful=False)


@pytest.mark.openclaw
@pytest.mark.timeout(300)
async def test_open_dm_policy_is_reported_in_status(unsafe: Runtime) -> None:
    at_ready = (await status_of(unsafe))["security"]
    assert at_ready["state"] in ("pending", "running"), "readiness does not wait for the audit"

    status = await wait_audit(unsafe)
    security = status["security"]
    assert security["state"] == "done", security
    by_id = {f["id"]: f for f in security["findings"]}
    open_dm = by_id["security.exposure.open_groups_with_elevated"]
    assert open_dm["severity"] == "critical"
    assert "channels.telegram.dmPolicy" in open_dm["detail"]
    assert "allowlist" in open_dm["fix"]
    assert security["counts"]["critical"] >= 1
    assert status["openclaw_version"] == (
        (Path(__file__).parents[2] / "container/openclaw.version").read_text().strip()
    )
    text = json.dumps(status)
    for value in [*secret_values(unsafe.env), unsafe.env["TELEGRAM_BOT_TOKEN"]]:
        assert value not in text
    assert "security audit: " in unsafe.output()


@pytest.mark.openclaw
@pytest.mark.timeout(300)
async def test_a_safer_config_is_audited_again(unsafe: Runtime) -> None:
    before = (await wait_audit(unsafe))["security"]["checked_at"]
    env = {**unsafe.env, "TELEGRAM_DM_POLICY": "pairing"}
    settings = load_settings(env)
    write_config(settings, render(settings))

    security = (await wait_audit(unsafe, after=before))["security"]
    assert security["state"] == "done", security
    ids = {f["id"] for f in security["findings"]}
    assert "security.exposure.open_groups_with_elevated" not in ids
    assert security["counts"]["critical"] == 0, security["findings"]
