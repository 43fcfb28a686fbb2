"""Preflight for `pulumi up`: everything people trip on, one line per problem with its fix.

    .cache/venv/bin/python -m infra.doctor --stack dev

Exits 1 when anything fails. Secret values are read (to check them) but never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudflare
import pulumi
import yaml

from infra import settings
from infra.dynamic import cf
from infra.permissions import AI_GATEWAY_RUN as AI_GROUP
from infra.permissions import R2_BUCKET_ITEM_WRITE as R2_GROUP

ROOT = Path(__file__).resolve().parent.parent
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str
    warning: bool = False  # worth reading, but `pulumi up` would still work

    def line(self) -> str:
        label = "WARN" if self.warning else ("ok  " if self.ok else "FAIL")
        return f"{label}  {self.message}"


@dataclass
class StackConfig:
    values: dict[str, str]  # full key -> value as Pulumi hands it to programs
    secret_keys: set[str]
    unreadable_secrets: set[str]  # encrypted in the stack file and no CLI to decrypt them
    source: str


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argument lists, no shell
        list(cmd), capture_output=True, text=True, timeout=60, check=False
    )


# --- tools ------------------------------------------------------------------------------


def check_pulumi(which: Which) -> Finding:
    if which("pulumi"):
        return Finding(True, "Pulumi CLI found")
    return Finding(
        False,
        "the Pulumi CLI is not on PATH; install it (curl -fsSL https://get.pulumi.com | sh) "
        "and open a new shell",
    )


def check_builder(which: Which, run: Runner) -> Finding:
    found = [tool for tool in ("docker", "podman") if which(tool)]
    if not found:
        return Finding(
            False,
            "no container builder: install Docker (or Podman) to build the sandbox image for "
            "linux/amd64",
        )
    for tool in found:
        try:
            result = run([tool, "info", "--format", "{{json .}}"])
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return Finding(True, f"{tool} can build images")
    return Finding(
        False,
        f"{' and '.join(found)} installed but no daemon answers; start Docker Desktop or "
        "`sudo systemctl start docker` (Podman: `podman machine start`)",
    )


def check_worker_build(config: StackConfig, which: Which, root: Path = ROOT) -> Finding:
    """The Worker is bundled by wrangler at `pulumi up` unless a prebuilt bundle is given."""
    if config.values.get(f"{settings.PROJECT}:workerBundleDir"):
        return Finding(True, "a prebuilt Worker bundle is configured")
    worker = root / config.values.get(f"{settings.PROJECT}:workerDir", "worker")
    if not (worker / "node_modules" / "wrangler" / "bin" / "wrangler.js").exists():
        return Finding(
            False, f"wrangler is not installed in {worker}; run `npm ci` there (Node 24)"
        )
    if not which("node"):
        return Finding(False, "node is not on PATH; install Node 24 to bundle the Worker")
    return Finding(True, "the Worker can be bundled (wrangler installed)")


# --- config -----------------------------------------------------------------------------


def read_config(stack: str, which: Which, run: Runner, root: Path = ROOT) -> StackConfig:
    """The stack's config from `pulumi config --json` when the CLI exists, else its YAML."""
    if which("pulumi"):
        result = run(
            ["pulumi", "config", "--json", "--show-secrets", "--stack", stack, "--cwd", str(root)]
        )
        if result.returncode != 0:
            raise SystemExit(
                f"FAIL  `pulumi config --stack {stack}` failed ({result.stderr.strip()[:200]}); "
                f"select or create the stack: `pulumi stack init {stack}`"
            )
        data: dict[str, Any] = json.loads(result.stdout or "{}")
        values: dict[str, str] = {}
        secrets = set()
        for key, entry in data.items():
            value = entry.get("value")
            if value is None and "objectValue" in entry:
                value = json.dumps(entry["objectValue"])
            if value is not None:
                values[key] = str(value)
            if entry.get("secret"):
                secrets.add(key)
        return StackConfig(values, secrets, set(), "pulumi config")
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise SystemExit(f"FAIL  no {path.name}; create the stack: `pulumi stack init {stack}`")
    raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    values, secrets, unreadable = {}, set(), set()
    for key, value in raw.items():
        if isinstance(value, dict) and "secure" in value:
            secrets.add(key)
            unreadable.add(key)
            continue
        if isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, list | dict):
            values[key] = json.dumps(value)
        else:
            values[key] = str(value)
    env_token = os.environ.get("CLOUDFLARE_API_TOKEN")
    if settings.CLOUDFLARE_TOKEN_KEY in unreadable and env_token:
        values[settings.CLOUDFLARE_TOKEN_KEY] = env_token
        unreadable.discard(settings.CLOUDFLARE_TOKEN_KEY)
    return StackConfig(values, secrets, unreadable, path.name)


def check_settings(config: StackConfig, stack: str) -> list[Finding]:
    """The program's own validation, run before `pulumi up` instead of during it."""
    values = dict(config.values)
    # Encrypted values we cannot read still count as set (and secret) for this check.
    for key in config.unreadable_secrets:
        values.setdefault(key, "encrypted")
    pulumi.runtime.set_all_config(values, sorted(config.secret_keys))
    warnings: list[str] = []
    try:
        settings.load(pulumi.Config(settings.PROJECT), stack, warn=warnings.append)
    except settings.SettingsError as err:
        return [Finding(False, p) for p in err.problems]
    return [Finding(True, "stack configuration is complete and valid")] + [
        Finding(True, w, warning=True) for w in warnings
    ]


# Formats of the secrets people paste; a value in another key's format is probably swapped.
SECRET_FORMATS: dict[str, tuple[str, re.Pattern[str]]] = {
    "moltworker:anthropicApiKey": (
        "an Anthropic key (sk-ant-...)",
        re.compile(r"^sk-ant-[\w-]{20,}$"),
    ),
    "moltworker:openaiApiKey": ("an OpenAI key (sk-...)", re.compile(r"^sk-(?!ant-)[\w-]{20,}$")),
    "moltworker:telegramBotToken": (
        "a Telegram bot token (<digits>:<token>)",
        re.compile(r"^\d{5,}:[\w-]{30,}$"),
    ),
    "moltworker:discordBotToken": (
        "a Discord bot token",
        re.compile(r"^[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}$"),
    ),
    "moltworker:slackBotToken": ("a Slack bot token (xoxb-...)", re.compile(r"^xoxb-[\w-]{10,}$")),
    "moltworker:slackAppToken": ("a Slack app token (xapp-...)", re.compile(r"^xapp-[\w-]{10,}$")),
    "cloudflare:apiToken": ("a Cloudflare API token", re.compile(r"^[\w-]{40,}$")),
}
_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{3,}$|^[a-z]+[A-Z][A-Za-z]+$")
_ASSIGNMENT = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*[=:]")


def check_secrets(config: StackConfig) -> list[Finding]:
    findings: list[Finding] = []
    checked = 0
    for key, (what, fmt) in SECRET_FORMATS.items():
        value = config.values.get(key)
        if value is None or key in config.unreadable_secrets:
            continue
        checked += 1
        fix = f"set it again: `pulumi config set --secret {key}` and paste only the value"
        if value != value.strip() or value[:1] in "\"'":
            findings.append(Finding(False, f"{key}: has surrounding spaces or quotes; {fix}"))
        elif _ASSIGNMENT.match(value):
            findings.append(
                Finding(False, f"{key}: holds an assignment (NAME=value), not a bare value; {fix}")
            )
        elif _KEY_NAME.match(value):
            findings.append(
                Finding(False, f"{key}: holds what looks like a key name, not a secret; {fix}")
            )
        elif not fmt.match(value):
            other = next(
                (o for o, (_, f) in SECRET_FORMATS.items() if o != key and f.match(value)), None
            )
            if other is not None:
                findings.append(
                    Finding(False, f"{key}: looks like the value for {other} (swapped?); {fix}")
                )
            else:
                findings.append(Finding(False, f"{key}: does not look like {what}; {fix}"))
    if not findings:
        if checked:
            findings.append(Finding(True, f"{checked} secret(s) look like what their names say"))
        else:
            findings.append(Finding(True, "no readable secrets to check", warning=True))
    return findings


# --- the account ------------------------------------------------------------------------


def check_account(
    token: str,
    account_id: str,
    workers_subdomain: str,
    http_client_factory: cf.HttpClientFactory | None = None,
) -> list[Finding]:
    c = cf.client(token, http_client_factory).with_options(max_retries=1)
    findings: list[Finding] = []
    try:
        verified = _verify(c, account_id)
    except cloudflare.APIError as err:
        return [
            Finding(
                False,
                cf.explain(err, "verify the API token", "API Tokens Read").args[0],
            )
        ]
    if verified != "active":
        return [
            Finding(
                False,
                f"the API token is {verified}; create a new one and "
                "`pulumi config set --secret cloudflare:apiToken` (paste it at the prompt)",
            )
        ]
    findings.append(Finding(True, "API token is valid and active"))

    probes: list[tuple[str, Callable[[], Any], str, dict[int, str]]] = [
        (
            "R2",
            lambda: c.r2.buckets.list(account_id=account_id),
            "Workers R2 Storage Write",
            {10042: "R2 is not enabled on the account; enable it in the dashboard (R2 > Overview)"},
        ),
        (
            "workers.dev subdomain",
            lambda: c.workers.subdomains.get(account_id=account_id),
            "Workers Scripts Write",
            {
                10007: "the account has no workers.dev subdomain; open Workers & Pages once in "
                "the dashboard to claim one"
            },
        ),
        (
            "Containers",
            lambda: c.containers.applications.list(account_id=account_id),
            "Containers Write",
            {1000: "Containers are not available on this account; they need the Workers Paid plan"},
        ),
        (
            "Access organization",
            lambda: c.zero_trust.organizations.list(account_id=account_id),
            "Access: Organizations, Identity Providers, and Groups Read",
            {
                12130: "the account has no Zero Trust organization; create one in the Zero "
                "Trust dashboard (it picks the team domain)"
            },
        ),
    ]
    probes += [
        (
            "Access applications",
            lambda: c.zero_trust.access.applications.list(account_id=account_id),
            "Access: Apps and Policies Write",
            {},
        ),
        (
            "AI Gateway",
            lambda: c.ai_gateway.list(account_id=account_id),
            "AI Gateway Edit",
            {},
        ),
        (
            "token permission groups",
            lambda: list(c.accounts.tokens.permission_groups.list(account_id=account_id)),
            "Account API Tokens Write",
            {},
        ),
    ]
    for name, probe, permission, known in probes:
        try:
            result = probe()
        except cloudflare.APIStatusError as err:
            codes = _codes(err.body)
            special = next((known[c] for c in codes if c in known), None)
            if special is not None:
                findings.append(Finding(False, special))
            elif err.status_code == 404 and name != "Containers":
                findings.append(Finding(False, f"{name}: not set up on the account (404)"))
            else:
                findings.append(
                    Finding(False, cf.explain(err, f"check {name}", permission).args[0])
                )
            continue
        except cloudflare.APIError as err:
            findings.append(Finding(False, cf.explain(err, f"check {name}", permission).args[0]))
            continue
        findings.append(Finding(True, f"{name} available"))
        if name == "token permission groups":
            names = {getattr(g, "name", None) for g in result}
            missing = [g for g in (R2_GROUP, AI_GROUP) if g not in names]
            if missing:
                findings[-1] = Finding(
                    False,
                    f"the account lists no permission group {missing}; the program scopes its "
                    "tokens with them (is R2 / AI Gateway enabled on the account?)",
                )
        if name == "workers.dev subdomain" and workers_subdomain:
            actual = getattr(result, "subdomain", None)
            if actual and actual != workers_subdomain:
                findings[-1] = Finding(
                    False,
                    f"moltworker:workersSubdomain is {workers_subdomain!r} but the account's is "
                    f"{actual!r}; `pulumi config set workersSubdomain {actual}`",
                )
    return findings


def _verify(c: cloudflare.Cloudflare, account_id: str) -> str:
    try:
        answer = c.user.tokens.verify()
    except cloudflare.APIStatusError as err:
        if err.status_code not in (401, 403):
            raise
        # Account-owned tokens are verified under the account, not the user.
        answer = c.accounts.tokens.verify(account_id=account_id)
    return str(getattr(answer, "status", "unknown"))


def _codes(body: Any) -> list[int]:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [
            e["code"]
            for e in body["errors"]
            if isinstance(e, dict) and isinstance(e.get("code"), int)
        ]
    return []


# --- entry point ------------------------------------------------------------------------


def run_checks(
    stack: str,
    *,
    which: Which = shutil.which,
    run: Runner = _run,
    root: Path = ROOT,
    http_client_factory: cf.HttpClientFactory | None = None,
) -> list[Finding]:
    findings = [check_pulumi(which), check_builder(which, run)]
    config = read_config(stack, which, run, root)
    findings.append(check_worker_build(config, which, root))
    findings += check_settings(config, stack)
    findings += check_secrets(config)
    token = config.values.get(settings.CLOUDFLARE_TOKEN_KEY)
    account_id = config.values.get(f"{settings.PROJECT}:accountId", "")
    if settings.CLOUDFLARE_TOKEN_KEY in config.unreadable_secrets:
        findings.append(
            Finding(
                False,
                "cannot check the account: the API token is encrypted in the stack file and the "
                "Pulumi CLI is missing; install the CLI or export CLOUDFLARE_API_TOKEN",
            )
        )
    elif not token:
        findings.append(Finding(False, "cannot check the account without an API token (above)"))
    elif re.fullmatch(r"[0-9a-f]{32}", account_id):
        subdomain = config.values.get(f"{settings.PROJECT}:workersSubdomain", "")
        findings += check_account(token, account_id, subdomain, http_client_factory)
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.doctor", description=__doc__)
    parser.add_argument("--stack", default=os.environ.get("PULUMI_STACK", "dev"))
    args = parser.parse_args(argv)
    findings = run_checks(args.stack)
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if not f.ok]
    print(f"\n{len(failed)} problem(s)" if failed else "\nready for `pulumi up`")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
