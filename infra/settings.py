"""Typed stack settings: the only place that reads `pulumi.Config`.

Every problem in the stack configuration is collected and reported in one `SettingsError`, one
line per problem, each naming the key and the command that fixes it, so a user fixes a broken
stack in one round instead of one `pulumi up` per mistake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

PROJECT = "moltworker"
ROOT = Path(__file__).resolve().parent.parent
OPENCLAW_VERSION_FILE = ROOT / "container" / "openclaw.version"

# The container instance types the Containers API accepts (cloudflare SDK:
# types/containers/application_create_params.py, `instance_type`).
INSTANCE_TYPES = ("lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4")
DM_POLICIES = ("pairing", "allowlist", "open", "disabled")
# Providers whose keys this program can hand to the runtime (docs/interfaces.md).
KEYED_PROVIDERS = {"anthropic": "anthropicApiKey", "openai": "openaiApiKey"}
MAX_INSTANCES_LIMIT = 10
PROD_STACK = re.compile(r"^(prod|production)([-_.].*)?$")

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
_MODEL = re.compile(r"^([a-z0-9][a-z0-9-]*)/([A-Za-z0-9][A-Za-z0-9._:@/-]*)$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+([-.][0-9A-Za-z.]+)?$")
_SLEEP_AFTER = re.compile(r"^([1-9]\d*[smh]|never)$")
_CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")
_WORKER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# The Cloudflare API token lives in the provider's own namespace so one value serves both the
# cloudflare provider and this program's dynamic providers.
CLOUDFLARE_TOKEN_KEY = "cloudflare:apiToken"  # noqa: S105 - a key name, not a value
ROTATABLE = ("gatewayToken", "controlSecret", "cdpSecret")


class SettingsError(Exception):
    """Every configuration problem of a stack, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the stack configuration:\n{lines}")


@dataclass(frozen=True)
class Model:
    provider: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True)
class AiGatewaySettings:
    rate_limit: int
    rate_limit_interval_s: int
    logs: bool
    cache_ttl_s: int


@dataclass(frozen=True)
class ChannelSettings:
    telegram_token: pulumi.Output[str] | None
    discord_token: pulumi.Output[str] | None
    slack_bot_token: pulumi.Output[str] | None
    slack_app_token: pulumi.Output[str] | None
    telegram_dm_policy: str
    discord_dm_policy: str
    slack_dm_policy: str


@dataclass(frozen=True)
class SandboxSettings:
    instance_type: str
    max_instances: int
    sleep_after: str
    openclaw_version: str


@dataclass(frozen=True)
class SnapshotSettings:
    keep: int
    trash_days: int
    multipart_abort_days: int


@dataclass(frozen=True)
class Settings:
    stack: str
    account_id: str
    cloudflare_api_token: pulumi.Output[str]
    worker_name: str
    workers_subdomain: str
    custom_domain: str
    zone_id: str
    access_team_domain: str
    admin_emails: tuple[str, ...]
    admin_email_domains: tuple[str, ...]
    access_service_token: bool
    provider_keys: dict[str, pulumi.Output[str]]
    model_primary: Model
    model_fallbacks: tuple[Model, ...]
    ai_gateway: AiGatewaySettings
    channels: ChannelSettings
    sandbox: SandboxSettings
    snapshots: SnapshotSettings
    ephemeral: bool
    debug_routes: bool
    cron: str
    worker_dir: Path
    worker_bundle_dir: Path | None
    container_dir: Path
    rotate: dict[str, int] = field(default_factory=dict)
    adopt_worker: bool = False  # set by `python -m ops adopt` (upgrade from the old deploy path)

    @property
    def hostname(self) -> str:
        """The Worker's public hostname, known from config alone (no cycle with Access)."""
        if self.custom_domain:
            return self.custom_domain
        return f"{self.worker_name}.{self.workers_subdomain}.workers.dev"

    @property
    def resource_prefix(self) -> str:
        """Prefix of physical names: unique per stack so stacks share an account safely."""
        return f"{PROJECT}-{self.stack}"


def _is_secret(full_key: str) -> bool:
    # The language host hands the secret keys over in PULUMI_CONFIG_SECRET_KEYS and the SDK's
    # exec shim installs them with set_all_config; tests install them directly. Read both.
    return (
        runtime_config.is_config_secret(full_key)
        or full_key in runtime_config.get_config_secret_keys_env()
    )


class _Reader:
    """Typed reads over pulumi.Config that record problems instead of raising."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{PROJECT}:{key}: {message}")

    def string(self, key: str, default: str = "") -> str:
        value = self.config.get(key)
        return default if value is None else value.strip()

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        raw = self.config.get(key)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problem(key, f"{raw!r} is not a whole number; `pulumi config set {key} {default}`")
            return default
        if not lo <= value <= hi:
            self.problem(
                key, f"{value} is outside {lo}..{hi}; `pulumi config set {key} <{lo}..{hi}>`"
            )
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.config.get(key)
        if raw is None or raw.strip() == "":
            return default
        if raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        self.problem(
            key, f"{raw!r} is not true/false; `pulumi config set {key} {str(default).lower()}`"
        )
        return default

    def string_list(self, key: str) -> list[str]:
        raw = self.config.get(key)
        if raw is None or raw.strip() == "":
            return []
        try:
            value: Any = self.config.get_object(key)
        except Exception:  # the SDK raises a bare ConfigTypeError subclass on bad JSON
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(
                key,
                "must be a list of strings; `pulumi config set --path "
                f"'{key}[0]' <value>` (or a JSON array in the stack file)",
            )
            return []
        return [v.strip() for v in value if v.strip()]

    def secret(self, key: str, *, namespace: str = PROJECT) -> pulumi.Output[str] | None:
        config = self.config if namespace == PROJECT else pulumi.Config(namespace)
        full_key = f"{namespace}:{key}"
        raw = config.get(key)
        if raw is None or raw == "":
            return None
        if not _is_secret(full_key):
            # Name the key only: echoing the value would print the secret we are protecting.
            self.problems.append(
                f"{full_key}: is stored in plain text in the stack file; remove it with "
                f"`pulumi config rm {full_key}` and set it again with "
                f"`pulumi config set --secret {full_key}` (paste it at the prompt; then rotate it: "
                "it was exposed)"
            )
        return config.require_secret(key)


def _parse_model(reader: _Reader, key: str, value: str) -> Model | None:
    match = _MODEL.match(value)
    if not match:
        reader.problem(
            key,
            f"{value!r} is not in provider/model form (e.g. anthropic/claude-sonnet-4-5); "
            f"`pulumi config set {key} <provider>/<model>`",
        )
        return None
    return Model(match.group(1), match.group(2))


def default_openclaw_version() -> str:
    try:
        return OPENCLAW_VERSION_FILE.read_text().strip()
    except OSError:
        return ""


def load(
    config: pulumi.Config | None = None,
    stack: str | None = None,
    *,
    warn: Callable[[str], None] = pulumi.log.warn,
) -> Settings:
    """Read and validate the whole stack configuration or raise one SettingsError."""
    config = config or pulumi.Config(PROJECT)
    stack = stack or pulumi.get_stack()
    r = _Reader(config)

    account_id = r.string("accountId")
    if not account_id:
        r.problem("accountId", "is required; `pulumi config set accountId <32-hex account id>`")
    elif not _ACCOUNT_ID.match(account_id):
        r.problem(
            "accountId",
            f"{account_id!r} is not a 32-character hex account id (dashboard URL: "
            "dash.cloudflare.com/<account id>); `pulumi config set accountId <id>`",
        )

    token = r.secret("apiToken", namespace="cloudflare")
    if token is None:
        r.problems.append(
            f"{CLOUDFLARE_TOKEN_KEY}: is required (the program's own Cloudflare API calls use it); "
            f"`pulumi config set --secret {CLOUDFLARE_TOKEN_KEY}` (paste it at the prompt)"
        )

    if not re.match(r"^[a-z0-9][a-z0-9-]*$", stack):
        r.problems.append(
            f"stack name {stack!r}: use lowercase letters, digits and '-' (it is part of resource "
            "names); `pulumi stack rename <name>`"
        )

    worker_name = r.string("workerName") or f"{PROJECT}-{stack}"
    if not _WORKER_NAME.match(worker_name):
        r.problem(
            "workerName", f"{worker_name!r} must be lowercase letters, digits and '-' (max 63)"
        )

    subdomain = r.string("workersSubdomain").lower()
    custom_domain = r.string("customDomain").lower().rstrip(".")
    zone_id = r.string("zoneId").lower()
    if custom_domain:
        if not _DOMAIN.match(custom_domain):
            r.problem("customDomain", f"{custom_domain!r} is not a hostname like agent.example.com")
        if not zone_id:
            r.problem(
                "zoneId",
                "customDomain is set but zoneId is not; the custom domain needs its zone: "
                "`pulumi config set zoneId <zone id>`",
            )
        elif not _ACCOUNT_ID.match(zone_id):
            r.problem("zoneId", f"{zone_id!r} is not a 32-character hex zone id")
        if subdomain:
            r.problem(
                "workersSubdomain",
                "both customDomain and workersSubdomain are set; the Worker is served on exactly "
                "one hostname: `pulumi config rm workersSubdomain` (or rm customDomain)",
            )
    else:
        if zone_id:
            r.problem("zoneId", "is set without customDomain; `pulumi config rm zoneId`")
        if not subdomain:
            r.problem(
                "workersSubdomain",
                "is required without customDomain (the account's <name>.workers.dev subdomain); "
                "`pulumi config set workersSubdomain <name>` or set customDomain and zoneId",
            )
        elif not _LABEL.match(subdomain):
            r.problem("workersSubdomain", f"{subdomain!r} is not a DNS label (a-z, 0-9, '-')")

    team_domain = r.string("accessTeamDomain").lower()
    if team_domain and not team_domain.endswith(".cloudflareaccess.com"):
        r.problem(
            "accessTeamDomain",
            f"{team_domain!r} must look like <team>.cloudflareaccess.com, or be unset to read it "
            "from the account's Zero Trust organization",
        )

    emails = r.string_list("adminEmails")
    for email in emails:
        if not _EMAIL.match(email):
            r.problem("adminEmails", f"{email!r} is not an email address; fix it in the stack file")
    domains = [d.lower().lstrip("@") for d in r.string_list("adminEmailDomains")]
    for domain in domains:
        if not _DOMAIN.match(domain):
            r.problem("adminEmailDomains", f"{domain!r} is not a domain like example.com")
    admins_misformatted = any(p.startswith(f"{PROJECT}:adminEmail") for p in r.problems)
    if not emails and not domains and not admins_misformatted:
        r.problem(
            "adminEmails",
            "no admin is allowed through Access (and 'everyone' is never used); "
            "`pulumi config set --path 'adminEmails[0]' you@example.com`",
        )

    provider_keys: dict[str, pulumi.Output[str]] = {}
    for provider, key in KEYED_PROVIDERS.items():
        value = r.secret(key)
        if value is not None:
            provider_keys[provider] = value

    primary = _parse_model(
        r, "modelPrimary", r.string("modelPrimary", "anthropic/claude-sonnet-4-5")
    )
    fallbacks: list[Model] = []
    for raw in r.string_list("modelFallbacks"):
        model = _parse_model(r, "modelFallbacks", raw)
        if model is None:
            continue
        if model in fallbacks or model == primary:
            r.problem("modelFallbacks", f"{model.ref!r} is listed twice in the model chain")
            continue
        fallbacks.append(model)
    for model in [m for m in (primary, *fallbacks) if m is not None]:
        if model.provider in KEYED_PROVIDERS and model.provider not in provider_keys:
            warn(
                f"{PROJECT}:{KEYED_PROVIDERS[model.provider]} is not set but {model.ref} is in the "
                "model chain; calls to it fail until you set the key with "
                f"`pulumi config set --secret {KEYED_PROVIDERS[model.provider]}`"
            )

    ai = AiGatewaySettings(
        rate_limit=r.integer("aiGatewayRateLimit", 120, 1, 1_000_000),
        rate_limit_interval_s=r.integer("aiGatewayRateLimitIntervalSeconds", 60, 1, 3600),
        logs=r.boolean("aiGatewayLogs", True),
        cache_ttl_s=r.integer("aiGatewayCacheTtlSeconds", 0, 0, 30 * 24 * 3600),
    )

    policies: dict[str, str] = {}
    for channel in ("telegram", "discord", "slack"):
        key = f"{channel}DmPolicy"
        policy = r.string(key, "pairing")
        if policy not in DM_POLICIES:
            r.problem(key, f"{policy!r} is not one of {', '.join(DM_POLICIES)}")
        policies[channel] = policy
    slack_bot = r.secret("slackBotToken")
    slack_app = r.secret("slackAppToken")
    if (slack_bot is None) != (slack_app is None):
        r.problem(
            "slackAppToken" if slack_app is None else "slackBotToken",
            "Slack needs both slackBotToken (xoxb-) and slackAppToken (xapp-); set the missing one "
            "with `pulumi config set --secret <key>` (paste it at the prompt) or remove both",
        )
    channels = ChannelSettings(
        telegram_token=r.secret("telegramBotToken"),
        discord_token=r.secret("discordBotToken"),
        slack_bot_token=slack_bot,
        slack_app_token=slack_app,
        telegram_dm_policy=policies["telegram"],
        discord_dm_policy=policies["discord"],
        slack_dm_policy=policies["slack"],
    )

    instance_type = r.string("instanceType", "standard-1")
    if instance_type not in INSTANCE_TYPES:
        r.problem(
            "instanceType",
            f"{instance_type!r} is not a Containers instance type; use one of "
            f"{', '.join(INSTANCE_TYPES)}",
        )
    sleep_after = r.string("sleepAfter", "10m")
    # The Worker accepts <n>s|m|h of at least one minute, or never (docs/interfaces.md).
    if not _SLEEP_AFTER.match(sleep_after) or (
        sleep_after.endswith("s") and int(sleep_after[:-1]) < 60
    ):
        r.problem("sleepAfter", f"{sleep_after!r} must be like 90s, 10m, 2h (>= 1 minute) or never")
    pinned = default_openclaw_version()
    version = r.string("openclawVersion") or pinned
    if pinned and version != pinned:
        warn(
            f"{PROJECT}:openclawVersion {version} differs from container/openclaw.version "
            f"({pinned}), the version the runtime is tested with"
        )
    if not _VERSION.match(version):
        r.problem(
            "openclawVersion",
            f"{version!r} is not an exact version (e.g. {pinned or '2026.9.6'}); 'latest' and "
            "ranges are refused so every deploy of a commit runs the same gateway",
        )
    sandbox = SandboxSettings(
        instance_type=instance_type,
        max_instances=r.integer("maxInstances", 1, 1, MAX_INSTANCES_LIMIT),
        sleep_after=sleep_after,
        openclaw_version=version,
    )

    snapshots = SnapshotSettings(
        keep=r.integer("snapshotKeep", 30, 1, 10_000),
        trash_days=r.integer("snapshotTrashDays", 30, 1, 3650),
        multipart_abort_days=r.integer("multipartAbortDays", 7, 1, 365),
    )

    ephemeral = r.boolean("ephemeral", False)
    if ephemeral and PROD_STACK.match(stack):
        r.problem(
            "ephemeral",
            f"stack {stack!r} is a production stack and must keep its data; "
            "`pulumi config set ephemeral false`",
        )
    debug_routes = r.boolean("debugRoutes", False)
    if debug_routes and PROD_STACK.match(stack):
        warn(f"{PROJECT}:debugRoutes is on in production stack {stack!r} (still behind Access)")

    access_service_token = r.boolean("accessServiceToken", False)
    adopt_worker = r.boolean("adoptWorker", False)
    cron = r.string("cronSchedule", "*/5 * * * *")
    if not _CRON.match(cron):
        r.problem("cronSchedule", f"{cron!r} is not a five-field cron expression")

    worker_dir = ROOT / r.string("workerDir", "worker")
    bundle = r.string("workerBundleDir")
    container_dir = ROOT / r.string("containerDir", "container")

    rotate = {
        name: r.integer(f"rotate{name[0].upper()}{name[1:]}", 0, 0, 1_000_000) for name in ROTATABLE
    }

    if r.problems:
        raise SettingsError(r.problems)
    assert token is not None and primary is not None  # guaranteed by the checks above
    return Settings(
        stack=stack,
        account_id=account_id,
        cloudflare_api_token=token,
        worker_name=worker_name,
        workers_subdomain=subdomain,
        custom_domain=custom_domain,
        zone_id=zone_id,
        access_team_domain=team_domain,
        admin_emails=tuple(emails),
        admin_email_domains=tuple(domains),
        access_service_token=access_service_token,
        provider_keys=provider_keys,
        model_primary=primary,
        model_fallbacks=tuple(fallbacks),
        ai_gateway=ai,
        channels=channels,
        sandbox=sandbox,
        snapshots=snapshots,
        ephemeral=ephemeral,
        debug_routes=debug_routes,
        cron=cron,
        worker_dir=worker_dir,
        worker_bundle_dir=(ROOT / bundle) if bundle else None,
        container_dir=container_dir,
        rotate=rotate,
        adopt_worker=adopt_worker,
    )
