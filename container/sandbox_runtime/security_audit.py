"""OpenClaw's own security audit (`openclaw security audit --json`), run in the background.

It runs each time the gateway turns ready (the first boot, and every restart, which is when a
changed state or binary takes effect) and whenever the rendered config file changes, never
before: readiness does not wait for it, and the audit's Node start-up does not compete with the
gateway's. Its output is outside input: it is parsed against the shape OpenClaw documents
(`SecurityAuditFinding`: checkId, severity info|warn|critical, title, detail, remediation?),
bounded in size, and every text passes the secret redactor and a token-shape filter before it is
kept. An audit that cannot be run, times out or prints something else becomes a finding of its
own, so the owner sees that the check is missing instead of an empty, reassuring list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from .logs import REDACTED
from .openclaw_cli import CliResult, CliTimeout

log = logging.getLogger("security")

AUDIT_ARGS = ("security", "audit", "--json")
# A clean audit takes a few seconds; one that installs a missing channel plugin first (OpenClaw
# does that for a configured Discord or Slack) can take minutes on a slow network.
AUDIT_TIMEOUT_S = 240.0
CONFIG_POLL_S = 5.0
MAX_OUTPUT_BYTES = 1 << 20
MAX_FINDINGS = 100
MAX_TITLE = 200
MAX_DETAIL = 2000
MAX_FIX = 1000

Severity = Literal["info", "warn", "critical"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warn", "info")
State = Literal["pending", "running", "done", "failed"]

FAILED_ID = "molt.security_audit_failed"
_CHECK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Shapes of credentials, for values the redactor cannot know (a key OpenClaw read from a file, a
# token someone pasted into a config value). Over-redacting a long hash is the accepted cost.
_TOKEN_RES = (
    # Authorization header values.
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # JWTs.
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Provider key prefixes: Anthropic/OpenAI, Slack, GitHub, GitLab, AWS access key ids.
    re.compile(r"\b(?:sk|xox[abposr]|xapp|ghp|gho|ghs|github_pat|glpat)[-_][A-Za-z0-9_-]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    # Telegram bot tokens: <bot id>:<35 characters>.
    re.compile(r"\b\d{6,}:[A-Za-z0-9_-]{30,}"),
    # `token=...`, `"apiKey": "..."` and the like: keep the name, drop the value.
    re.compile(
        r"(?i)(\b(?:token|secret|password|passwd|api[_-]?key|authorization)\b[\"']?\s*[:=]\s*"
        r"[\"']?)[^\s\"',;]{6,}"
    ),
    # Any long run of key-like characters mixing letters and digits (no '/', so paths survive).
    re.compile(r"(?=[A-Za-z_+=-]*\d)(?=[0-9_+=-]*[A-Za-z])[A-Za-z0-9_+=-]{32,}"),
)


def redact_tokens(text: str) -> str:
    for pattern in _TOKEN_RES:
        if pattern.groups:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


@dataclass(frozen=True)
class Finding:
    check_id: str
    severity: Severity
    title: str
    detail: str
    fix: str | None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "severity": self.severity,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
        }


class AuditOutputError(Exception):
    """The audit's output is not the report OpenClaw documents; the message says where."""


def parse_report(result: CliResult, clean: Callable[[str], str]) -> list[Finding]:
    """The findings in `openclaw security audit --json` output, most severe first.

    `clean` redacts known secret values; token shapes are removed here as well. Raises
    AuditOutputError when the process failed or its output is not a report.
    """
    if result.returncode != 0:
        raise AuditOutputError(
            f"exited with {result.returncode}: {clean(result.error_message())[:MAX_DETAIL]}"
        )
    if len(result.stdout.encode(errors="replace")) > MAX_OUTPUT_BYTES:
        raise AuditOutputError(f"printed more than {MAX_OUTPUT_BYTES} bytes")
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise AuditOutputError("did not print JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise AuditOutputError("printed JSON without a findings list")
    entries: list[Any] = data["findings"]
    findings = [_finding(index, entry, clean) for index, entry in enumerate(entries)]
    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    if len(findings) > MAX_FINDINGS:
        dropped = findings[MAX_FINDINGS - 1 :]
        findings = findings[: MAX_FINDINGS - 1]
        findings.append(
            Finding(
                "molt.security_audit_truncated",
                "warn",
                f"{len(dropped)} more findings not shown",
                "The audit reported more findings than the status keeps; the rest are in "
                "`openclaw security audit` run inside the container.",
                None,
            )
        )
    return findings


def _finding(index: int, entry: Any, clean: Callable[[str], str]) -> Finding:
    where = f"finding {index}"
    if not isinstance(entry, dict):
        raise AuditOutputError(f"{where} is not an object")
    check_id = entry.get("checkId")
    if not isinstance(check_id, str) or not _CHECK_ID_RE.fullmatch(check_id):
        raise AuditOutputError(f"{where} has no usable checkId")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise AuditOutputError(
            f"{where} ({check_id}) has severity {str(severity)[:20]!r}, not one of "
            f"{', '.join(SEVERITIES)}: this OpenClaw reports in a form the runtime does not know"
        )
    title, detail, fix = entry.get("title"), entry.get("detail"), entry.get("remediation")
    if not isinstance(title, str) or not isinstance(detail, str):
        raise AuditOutputError(f"{where} ({check_id}) lacks a title or detail text")
    if fix is not None and not isinstance(fix, str):
        raise AuditOutputError(f"{where} ({check_id}) has a remediation that is not text")
    return Finding(
        check_id=check_id,
        severity=severity,
        title=_text(title, MAX_TITLE, clean),
        detail=_text(detail, MAX_DETAIL, clean),
        fix=_text(fix, MAX_FIX, clean) if fix else None,
    )


def _text(value: str, limit: int, clean: Callable[[str], str]) -> str:
    # Redacted before it is cut, so a cut never leaves the head of a secret behind.
    text = redact_tokens(clean(_CONTROL_RE.sub(" ", value))).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_finding(reason: str) -> Finding:
    return Finding(
        FAILED_ID,
        "warn",
        "OpenClaw's security audit did not complete",
        f"`openclaw {' '.join(AUDIT_ARGS)}` {reason}. The findings below, if any, are from the "
        "last audit that did.",
        "Check the runtime's logs (GET /v1/logs, or the admin page's source, the container "
        "logs); the audit runs again when the gateway restarts.",
    )


class Cli(Protocol):
    """What the audit needs of OpenClawCli."""

    async def run(self, *args: str, timeout: float = 30.0) -> CliResult: ...


@dataclass(frozen=True)
class _Run:
    findings: tuple[Finding, ...]
    at: datetime
    duration_s: float


class SecurityAudit:
    def __init__(
        self,
        cli: Cli,
        clean: Callable[[str], str],
        config_path: Path,
        *,
        timeout_s: float = AUDIT_TIMEOUT_S,
        config_poll_s: float = CONFIG_POLL_S,
    ) -> None:
        self._cli = cli
        self._clean = clean
        self._config_path = config_path
        self._timeout_s = timeout_s
        self._config_poll_s = config_poll_s
        self._wanted = asyncio.Event()
        self._reasons: list[str] = []
        self._state: State = "pending"
        self._last_good: _Run | None = None
        self._failure: Finding | None = None
        self._runs = 0

    def request(self, reason: str) -> None:
        """Ask for an audit; requests made while one runs give exactly one more run after it."""
        self._reasons.append(reason)
        self._wanted.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve requests (and watch the config file) until the block ends."""
        tasks = [
            asyncio.create_task(self._serve()),
            asyncio.create_task(self._watch_config()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def run_once(self) -> None:
        """One audit now; its outcome replaces what status() reports."""
        self._state = "running"
        started = time.monotonic()
        try:
            result = await self._cli.run(*AUDIT_ARGS, timeout=self._timeout_s)
            findings = parse_report(result, self._clean)
        except CliTimeout:
            self._fail(f"did not finish within {self._timeout_s:.0f}s")
        except OSError as exc:
            self._fail(f"could not be started ({exc.strerror or type(exc).__name__})")
        except AuditOutputError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug here must not end the loop that serves later requests
            log.exception("security audit crashed")
            self._fail(f"failed in the runtime ({type(exc).__name__})")
        else:
            self._last_good = _Run(
                tuple(findings), datetime.now(UTC), round(time.monotonic() - started, 1)
            )
            self._failure = None
            self._state = "done"
            counts = _counts(findings)
            log.info(
                "security audit: %d critical, %d warn, %d info",
                counts["critical"],
                counts["warn"],
                counts["info"],
            )
            for finding in findings:
                if finding.severity == "critical":
                    log.warning(
                        "security audit: critical: %s (%s)", finding.title, finding.check_id
                    )
        finally:
            self._runs += 1

    def _fail(self, reason: str) -> None:
        log.error("security audit failed: %s", reason)
        self._failure = failure_finding(reason)
        self._state = "failed"

    async def _serve(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            reasons, self._reasons = self._reasons, []
            log.info("running OpenClaw's security audit (%s)", ", ".join(dict.fromkeys(reasons)))
            await self.run_once()

    async def _watch_config(self) -> None:
        seen = self._config_fingerprint()
        while True:
            await asyncio.sleep(self._config_poll_s)
            current = self._config_fingerprint()
            if current != seen:
                seen = current
                self.request("config changed")

    def _config_fingerprint(self) -> tuple[int, int, int] | None:
        try:
            st = self._config_path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    @property
    def runs(self) -> int:
        return self._runs

    def findings(self) -> list[Finding]:
        kept = list(self._last_good.findings) if self._last_good else []
        return [self._failure, *kept] if self._failure else kept

    def status(self) -> dict[str, Any]:
        findings = self.findings()
        good = self._last_good
        return {
            "state": self._state,
            "checked_at": good.at.isoformat().replace("+00:00", "Z") if good else None,
            "duration_s": good.duration_s if good else None,
            "counts": _counts(findings),
            "findings": [finding.json() for finding in findings],
        }


def _counts(findings: list[Finding]) -> dict[str, int]:
    return {severity: sum(1 for f in findings if f.severity == severity) for severity in SEVERITIES}
