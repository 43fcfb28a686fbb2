"""Typed stack settings: the only place that reads `pulumi.Config`.

Every problem in the stack configuration is collected and reported in one `SettingsError`, one
line per problem, each naming the key and the command that fixes it, so a user fixes a broken
stack in one round instead of one `pulumi up` per mistake.

`load` hands each section of the config (account, hostname, Access, models, AI Gateway,
channels, sandbox, snapshots, lifecycle, sources) to its own reader. The rules and defaults the
readers apply are the shared contract's (contract/__init__.py), which the policy pack, the ops
commands and (through tested copies) the runtime and the Worker apply too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

import contract
from contract import CLOUDFLARE_TOKEN_KEY, DM_POLICIES, INSTANCE_TYPES, PROJECT, ROTATABLE

ROOT = Path(__file__).resolve().parent.parent
OPENCLAW_VERSION_FILE = ROOT / "container" / "openclaw.version"

# Kept for the modules that import them from here (ops.init, ops.doctor, tests).
KEYED_PROVIDERS = {p.name: p.config_key for p in contract.PROVIDERS.values()}
MAX_INSTANCES_LIMIT = contract.MAX_INSTANCES.hi
PROD_STACK = contract.PRODUCTION_STACK
__all__ = [
    "CLOUDFLARE_TOKEN_KEY",
    "DM_POLICIES",
    "INSTANCE_TYPES",
    "KEYED_PROVIDERS",
    "MAX_INSTANCES_LIMIT",
    "PROD_STACK",
    "PROJECT",
    "ROTATABLE",
    "Settings",
    "SettingsError",
    "load",
]

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
_WORKER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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
    """Typed reads over pulumi.Config that record problems instead of raising; defaults and
    bounds are the contract's."""

    def __init__(self, config: pulumi.Config, warn: Callable[[str], None]) -> None:
        self.config = config
        self.warn = warn
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{PROJECT}:{key}: {message}")

    def string(self, key: str) -> str:
        value = self.config.get(key)
        return contract.default_str(key) if value is None else value.strip()

    def integer(self, key: str) -> int:
        default, bounds = contract.default_int(key), contract.BOUNDS[key]
        raw = self.config.get(key)
        if raw is None or raw.strip() == "":
            return default
        if not raw.strip().isascii() or not raw.strip().isdigit():
            self.problem(key, f"{raw!r} is not a whole number; `pulumi config set {key} {default}`")
            return default
        value = contract.parse_whole(raw, bounds)
        if value is None:
            self.problem(
                key, f"{int(raw)} is outside {bounds}; `pulumi config set {key} <{bounds}>`"
            )
            return default
        return value

    def boolean(self, key: str) -> bool:
        default = contract.default_bool(key)
        value = contract.parse_flag(self.config.get(key), default)
        if value is None:
            self.problem(
                key,
                f"{self.config.get(key)!r} is not true/false; "
                f"`pulumi config set {key} {str(default).lower()}`",
            )
            return default
        return value

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


def default_openclaw_version() -> str:
    try:
        return OPENCLAW_VERSION_FILE.read_text().strip()
    except OSError:
        return ""


# --- one reader per section ------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    account_id: str
    token: pulumi.Output[str] | None


def _account(r: _Reader, stack: str) -> _Account:
    account_id = r.string("accountId")
    if not account_id:
        r.problem("accountId", "is required; `pulumi config set accountId <32-hex account id>`")
    elif not _ACCOUNT_ID.match(account_id):
        r.problem(
            "accountId",
            f"{account_id!r} is not a 32-character hex account id (dashboard URL: "
            "dash.cloudflare.com/<account id>); `pulumi config set accountId <id>`",
        )
    namespace, key = CLOUDFLARE_TOKEN_KEY.split(":")
    token = r.secret(key, namespace=namespace)
    if token is None:
        r.problems.append(
            f"{CLOUDFLARE_TOKEN_KEY}: is required (the program's own Cloudflare API calls use it); "
            f"`pulumi config set --secret {CLOUDFLARE_TOKEN_KEY}` (paste it at the prompt)"
        )
    problem = contract.stack_name_problem(stack)
    if problem:
        r.problems.append(f"{problem}; `pulumi stack rename <name>`")
    return _Account(account_id, token)


@dataclass(frozen=True)
class _Hostname:
    worker_name: str
    subdomain: str
    custom_domain: str
    zone_id: str


def _hostname(r: _Reader, stack: str) -> _Hostname:
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
    return _Hostname(worker_name, subdomain, custom_domain, zone_id)


@dataclass(frozen=True)
class _Access:
    team_domain: str
    emails: tuple[str, ...]
    domains: tuple[str, ...]
    service_token: bool


def _access(r: _Reader) -> _Access:
    team_domain = r.string("accessTeamDomain").lower()
    if team_domain and not team_domain.endswith(".cloudflareaccess.com"):
        r.problem(
            "accessTeamDomain",
            f"{team_domain!r} must look like <team>.cloudflareaccess.com, or be unset to read it "
            "from the account's Zero Trust organization",
        )
    before = len(r.problems)
    emails = r.string_list("adminEmails")
    for email in emails:
        if not _EMAIL.match(email):
            r.problem("adminEmails", f"{email!r} is not an email address; fix it in the stack file")
    domains = [d.lower().lstrip("@") for d in r.string_list("adminEmailDomains")]
    for domain in domains:
        if not _DOMAIN.match(domain):
            r.problem("adminEmailDomains", f"{domain!r} is not a domain like example.com")
    if not emails and not domains and len(r.problems) == before:
        r.problem(
            "adminEmails",
            "no admin is allowed through Access (and 'everyone' is never used); "
            "`pulumi config set --path 'adminEmails[0]' you@example.com`",
        )
    return _Access(team_domain, tuple(emails), tuple(domains), r.boolean("accessServiceToken"))


@dataclass(frozen=True)
class _Models:
    provider_keys: dict[str, pulumi.Output[str]]
    primary: Model | None
    fallbacks: tuple[Model, ...]


def _model(r: _Reader, key: str, ref: str) -> Model | None:
    problem = contract.model_ref_problem(ref)
    if problem:
        r.problem(key, f"{problem}; `pulumi config set {key} <provider>/<model>`")
        return None
    provider, name = contract.parse_model_ref(ref) or ("", "")
    return Model(provider, name)


def _models(r: _Reader) -> _Models:
    provider_keys: dict[str, pulumi.Output[str]] = {}
    for provider in contract.PROVIDERS.values():
        value = r.secret(provider.config_key)
        if value is not None:
            provider_keys[provider.name] = value
    primary = _model(r, "modelPrimary", r.string("modelPrimary"))
    fallbacks: list[Model] = []
    for raw in r.string_list("modelFallbacks"):
        model = _model(r, "modelFallbacks", raw)
        if model is None:
            continue
        if model in fallbacks or model == primary:
            r.problem("modelFallbacks", f"{model.ref!r} is listed twice in the model chain")
            continue
        fallbacks.append(model)
    for model in [m for m in (primary, *fallbacks) if m is not None]:
        if model.provider not in provider_keys:
            key = contract.PROVIDERS[model.provider].config_key
            r.warn(
                f"{PROJECT}:{key} is not set but {model.ref} is in the model chain; calls to it "
                f"fail until you set the key with `pulumi config set --secret {key}`"
            )
    return _Models(provider_keys, primary, tuple(fallbacks))


def _ai_gateway(r: _Reader) -> AiGatewaySettings:
    return AiGatewaySettings(
        rate_limit=r.integer("aiGatewayRateLimit"),
        rate_limit_interval_s=r.integer("aiGatewayRateLimitIntervalSeconds"),
        logs=r.boolean("aiGatewayLogs"),
        cache_ttl_s=r.integer("aiGatewayCacheTtlSeconds"),
    )


def _channels(r: _Reader) -> ChannelSettings:
    policies: dict[str, str] = {}
    for channel in contract.CHANNELS:
        key = f"{channel}DmPolicy"
        policy = r.string(key)
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
    return ChannelSettings(
        telegram_token=r.secret("telegramBotToken"),
        discord_token=r.secret("discordBotToken"),
        slack_bot_token=slack_bot,
        slack_app_token=slack_app,
        telegram_dm_policy=policies["telegram"],
        discord_dm_policy=policies["discord"],
        slack_dm_policy=policies["slack"],
    )


def _sandbox(r: _Reader) -> SandboxSettings:
    instance_type = r.string("instanceType")
    if instance_type not in INSTANCE_TYPES:
        r.problem(
            "instanceType",
            f"{instance_type!r} is not a Containers instance type; use one of "
            f"{', '.join(INSTANCE_TYPES)}",
        )
    sleep_after = r.string("sleepAfter")
    if contract.sleep_after_seconds(sleep_after) is None:
        r.problem(
            "sleepAfter",
            f"{sleep_after!r} must be like 90s, 10m, 2h (>= 1 minute) or never",
        )
    pinned = default_openclaw_version()
    version = r.string("openclawVersion") or pinned
    if pinned and version != pinned:
        r.warn(
            f"{PROJECT}:openclawVersion {version} differs from container/openclaw.version "
            f"({pinned}), the version the runtime is tested with"
        )
    if not contract.is_exact_version(version):
        r.problem(
            "openclawVersion",
            f"{version!r} is not an exact version (e.g. {pinned or '2026.9.6'} or "
            "2026.9.6-beta.1); 'latest', ranges, build metadata and four-part numbers are refused "
            "so every deploy of a commit installs the same gateway",
        )
    return SandboxSettings(
        instance_type=instance_type,
        max_instances=r.integer("maxInstances"),
        sleep_after=sleep_after,
        openclaw_version=version,
    )


def _snapshots(r: _Reader) -> SnapshotSettings:
    return SnapshotSettings(
        keep=r.integer("snapshotKeep"),
        trash_days=r.integer("snapshotTrashDays"),
        multipart_abort_days=r.integer("multipartAbortDays"),
    )


@dataclass(frozen=True)
class _Lifecycle:
    ephemeral: bool
    debug_routes: bool
    adopt_worker: bool
    rotate: dict[str, int]


def _lifecycle(r: _Reader, stack: str) -> _Lifecycle:
    ephemeral = r.boolean("ephemeral")
    production = contract.is_production_stack(stack)
    if ephemeral and production:
        r.problem(
            "ephemeral",
            f"stack {stack!r} is a production stack and must keep its data; "
            "`pulumi config set ephemeral false`",
        )
    debug_routes = r.boolean("debugRoutes")
    if debug_routes and production:
        r.warn(f"{PROJECT}:debugRoutes is on in production stack {stack!r} (still behind Access)")
    rotate = {name: r.integer(contract.rotate_key(name)) for name in ROTATABLE}
    return _Lifecycle(ephemeral, debug_routes, r.boolean("adoptWorker"), rotate)


@dataclass(frozen=True)
class _Sources:
    cron: str
    worker_dir: Path
    worker_bundle_dir: Path | None
    container_dir: Path


def _sources(r: _Reader) -> _Sources:
    cron = r.string("cronSchedule")
    if not contract.CRON.match(cron):
        r.problem("cronSchedule", f"{cron!r} is not a five-field cron expression")
    bundle = r.string("workerBundleDir")
    return _Sources(
        cron=cron,
        worker_dir=ROOT / r.string("workerDir"),
        worker_bundle_dir=(ROOT / bundle) if bundle else None,
        container_dir=ROOT / r.string("containerDir"),
    )


def load(
    config: pulumi.Config | None = None,
    stack: str | None = None,
    *,
    warn: Callable[[str], None] = pulumi.log.warn,
) -> Settings:
    """Read and validate the whole stack configuration or raise one SettingsError."""
    stack = stack or pulumi.get_stack()
    r = _Reader(config or pulumi.Config(PROJECT), warn)
    account = _account(r, stack)
    host = _hostname(r, stack)
    access = _access(r)
    models = _models(r)
    ai = _ai_gateway(r)
    channels = _channels(r)
    sandbox = _sandbox(r)
    snapshots = _snapshots(r)
    life = _lifecycle(r, stack)
    sources = _sources(r)
    if r.problems:
        raise SettingsError(r.problems)
    assert account.token is not None and models.primary is not None  # checked above
    return Settings(
        stack=stack,
        account_id=account.account_id,
        cloudflare_api_token=account.token,
        worker_name=host.worker_name,
        workers_subdomain=host.subdomain,
        custom_domain=host.custom_domain,
        zone_id=host.zone_id,
        access_team_domain=access.team_domain,
        admin_emails=access.emails,
        admin_email_domains=access.domains,
        access_service_token=access.service_token,
        provider_keys=models.provider_keys,
        model_primary=models.primary,
        model_fallbacks=models.fallbacks,
        ai_gateway=ai,
        channels=channels,
        sandbox=sandbox,
        snapshots=snapshots,
        ephemeral=life.ephemeral,
        debug_routes=life.debug_routes,
        cron=sources.cron,
        worker_dir=sources.worker_dir,
        worker_bundle_dir=sources.worker_bundle_dir,
        container_dir=sources.container_dir,
        rotate=life.rotate,
        adopt_worker=life.adopt_worker,
    )
