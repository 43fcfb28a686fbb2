"""`doctor`: the preflight for `pulumi up`; everything people trip on, one line per problem
with its fix.

    .cache/venv/bin/python -m ops doctor --stack dev

Exits 1 when anything fails. Secret values are read (to check them) but never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import yaml

from infra import settings
from policies.secret_shapes import CREDENTIAL_FORMATS

from .adopt import LEGACY_TYPES
from .context import Commands, Deps
from .errors import Console

if TYPE_CHECKING:
    # Loaded by the checks that use them: `python -m ops` builds every command's parser, and
    # the Cloudflare SDK would slow down all of them (tests/ops/test_ops_cli.py).
    import cloudflare

    from infra.dynamic import cf

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


SHIM = ROOT / "infra" / "docker_shim.py"


def check_builder(which: Which, run: Runner, env: Mapping[str, str] | None = None) -> Finding:
    """wrangler builds and pushes the image by running `docker` (or $WRANGLER_DOCKER_BIN)."""
    chosen = (os.environ if env is None else env).get("WRANGLER_DOCKER_BIN")
    if chosen:
        if not (which(chosen) or Path(chosen).is_file()):
            return Finding(False, f"WRANGLER_DOCKER_BIN={chosen} does not exist; fix or unset it")
        try:
            result = run([chosen, "info", "--format", "{{json .}}"])
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            return Finding(True, f"{chosen} (WRANGLER_DOCKER_BIN) can build images")
        return Finding(
            False,
            f"WRANGLER_DOCKER_BIN={chosen} does not answer `info`; start the engine it drives "
            "(Docker: `sudo systemctl start docker`)",
        )
    found = [tool for tool in ("docker", "podman") if which(tool)]
    if not found:
        return Finding(
            False,
            "no container CLI: install Docker (or Podman); wrangler builds the sandbox image "
            "for linux/amd64 with it during `pulumi up`",
        )
    for tool in found:
        try:
            result = run([tool, "info", "--format", "{{json .}}"])
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode != 0:
            continue
        if tool == "podman":
            return Finding(
                False,
                "only Podman answers, and wrangler runs `docker` with flags Podman 4 lacks: "
                f"`export WRANGLER_DOCKER_BIN={SHIM}` (the project's docker-CLI adapter)",
            )
        return Finding(True, f"{tool} can build images")
    return Finding(
        False,
        f"{' and '.join(found)} installed but no daemon answers; start Docker Desktop or "
        "`sudo systemctl start docker` (Podman: `podman machine start`)",
    )


def check_worker_build(config: StackConfig, which: Which, root: Path = ROOT) -> Finding:
    """`pulumi up` runs the wrangler the Worker's package.json pins: installed, that version."""
    from infra import worker as worker_module
    from infra.dynamic.worker_deploy import installed_wrangler_version

    worker = root / config.values.get(f"{settings.PROJECT}:workerDir", "worker")
    wrangler = worker / "node_modules" / "wrangler" / "bin" / "wrangler.js"
    if not wrangler.exists():
        return Finding(
            False, f"wrangler is not installed in {worker}; run `npm ci` there (Node 24)"
        )
    try:
        pin = worker_module.wrangler_pin(worker)
    except ValueError as err:
        return Finding(False, str(err))
    installed = installed_wrangler_version(wrangler)
    if installed != pin:
        return Finding(
            False,
            f"wrangler {installed} is installed in {worker} but package.json pins {pin}; run "
            "`npm ci` there",
        )
    if not which("node"):
        return Finding(False, "node is not on PATH; install Node 24 (wrangler runs on it)")
    return Finding(True, f"wrangler {pin} (the pinned version) is installed")


def check_legacy_state(stack: str, which: Which, run: Runner, root: Path = ROOT) -> Finding:
    if not which("pulumi"):
        return Finding(True, "no Pulumi CLI: the stack's state was not checked", warning=True)
    result = run(["pulumi", "stack", "export", "--stack", stack, "--cwd", str(root)])
    if result.returncode != 0:
        return Finding(True, "the stack has no state yet (a first `pulumi up`)", warning=True)
    try:
        resources = json.loads(result.stdout or "{}").get("deployment", {}).get("resources") or []
    except ValueError:
        return Finding(True, "`pulumi stack export` gave no JSON; state not checked", warning=True)
    legacy = [r["urn"] for r in resources if r.get("type") in LEGACY_TYPES and r.get("urn")]
    if not legacy:
        return Finding(True, "the stack's state has no resources of the old deploy path")
    return Finding(
        False,
        f"the stack's state still holds {len(legacy)} resource(s) of the old deploy path, which "
        "`pulumi up` would delete (the live Worker and container application with them; the "
        "new deploy refuses to start until this is done): run `python -m ops adopt --stack "
        f"{stack}` (state only, nothing is deleted in the account)",
    )


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


# The credential format each pasted secret should have (policies/secret_shapes.py holds the
# formats, shared with the policy pack); a value in another key's format is probably swapped.
SECRET_FORMATS: dict[str, str] = {
    "moltworker:anthropicApiKey": "anthropic",
    "moltworker:openaiApiKey": "openai",
    "moltworker:telegramBotToken": "telegram",
    "moltworker:discordBotToken": "discord",
    "moltworker:slackBotToken": "slack-bot",
    "moltworker:slackAppToken": "slack-app",
    "cloudflare:apiToken": "cloudflare",
}
_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{3,}$|^[a-z]+[A-Z][A-Za-z]+$")
_ASSIGNMENT = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*[=:]")


def check_secrets(config: StackConfig) -> list[Finding]:
    findings: list[Finding] = []
    checked = 0
    for key, kind in SECRET_FORMATS.items():
        fmt = CREDENTIAL_FORMATS[kind]
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
        elif not fmt.is_whole(value):
            other = next(
                (
                    o
                    for o, k in SECRET_FORMATS.items()
                    if o != key and CREDENTIAL_FORMATS[k].is_whole(value)
                ),
                None,
            )
            if other is not None:
                findings.append(
                    Finding(False, f"{key}: looks like the value for {other} (swapped?); {fix}")
                )
            else:
                findings.append(
                    Finding(False, f"{key}: does not look like {fmt.description}; {fix}")
                )
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
    import cloudflare

    from infra.dynamic import cf

    # infra.permissions loads pulumi_cloudflare (2 s): only for the commands that get this far.
    from infra.permissions import AI_GATEWAY_RUN as AI_GROUP
    from infra.permissions import R2_BUCKET_ITEM_WRITE as R2_GROUP

    c = cf.client(token, http_client_factory).with_options(max_retries=1)
    findings: list[Finding] = []
    try:
        verified, token_id = _verify(c, account_id)
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
    findings.append(_check_token_permissions(c, account_id, token_id))

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


def _verify(c: cloudflare.Cloudflare, account_id: str) -> tuple[str, str]:
    import cloudflare

    try:
        answer = c.user.tokens.verify()
    except cloudflare.APIStatusError as err:
        if err.status_code not in (401, 403):
            raise
        # Account-owned tokens are verified under the account, not the user.
        answer = c.accounts.tokens.verify(account_id=account_id)
    return str(getattr(answer, "status", "unknown")), str(getattr(answer, "id", "") or "")


# What the Worker deploy itself needs (wrangler's script upload and the container application;
# infra/dynamic/worker_deploy.py names them in its errors, a test ties the two); the probes
# below cover the rest by reading each feature.
DEPLOY_PERMISSIONS = ("Workers Scripts Write", "Containers Write")


def _check_token_permissions(c: cloudflare.Cloudflare, account_id: str, token_id: str) -> Finding:
    """Read the token's own policies and name the deploy permissions it lacks.

    A read probe cannot tell Read from Write, and wrangler's `PUT /workers/scripts/{name}`
    needs Write; the token's policies say it without changing anything.
    """
    import cloudflare

    token: Any = None
    for get in (
        lambda: c.accounts.tokens.get(token_id, account_id=account_id),
        lambda: c.user.tokens.get(token_id),
    ):
        try:
            token = get()
            break
        except cloudflare.APIError:
            continue
    if token is None or not token_id:
        return Finding(
            True,
            f"could not read the token's own permissions; make sure it has "
            f"{' and '.join(repr(p) for p in DEPLOY_PERMISSIONS)} (wrangler uploads the Worker "
            "and its container application with them)",
            warning=True,
        )
    granted = {
        getattr(group, "name", None)
        for policy in getattr(token, "policies", None) or []
        if getattr(policy, "effect", "allow") == "allow"
        for group in getattr(policy, "permission_groups", None) or []
    }
    missing = [p for p in DEPLOY_PERMISSIONS if p not in granted]
    if missing:
        return Finding(
            False,
            f"the API token lacks {', '.join(repr(p) for p in missing)}: wrangler's "
            "`PUT /workers/scripts/{name}` and the container application need them; add them "
            "to the token in the dashboard (My Profile > API Tokens)",
        )
    return Finding(True, f"the token grants {' and '.join(repr(p) for p in DEPLOY_PERMISSIONS)}")


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
    findings.append(check_legacy_state(stack, which, run, root))
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


def report(findings: Sequence[Finding], console: Console) -> int:
    for finding in findings:
        console.print(finding.line())
    failed = [f for f in findings if not f.ok]
    console.print(f"\n{len(failed)} problem(s)" if failed else "\nready for `pulumi up`")
    return 1 if failed else 0


def cmd_doctor(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    try:
        findings = run_checks(args.stack, root=Path(args.project_dir))
    except SystemExit as exc:  # the stack's config could not be read: one sentence with the fix
        console.warn(str(exc))
        return 1
    return report(findings, console)


def register(commands: Commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="preflight for `pulumi up`: tools, stack config, secrets, account, token, state",
        description="Check what `pulumi up` needs, one line per problem with its fix: the "
        "Pulumi CLI, the container CLI wrangler builds with, the pinned wrangler, the stack's "
        "config and secrets, the account's features and the token's permissions, and resources "
        "of the old deploy path in the state. Exits 1 when anything fails.",
    )
    doctor.add_argument(
        "--stack",
        default=os.environ.get("PULUMI_STACK", "dev"),
        help="stack name (default: $PULUMI_STACK or dev)",
    )
    doctor.set_defaults(handler=cmd_doctor)
