"""The rules the parts of moltworker share, written once (standard library only).

The program (`infra`), the policy pack (`policies`) and the ops commands (`ops`) import this
module. Two parts cannot: the sandbox runtime ships alone in the image (its build context is
`container/`) and the Worker is TypeScript. They keep their own copies of what they enforce,
and tests/contract ties every copy to this module, values included, and runs one table of
sample values through every parser (tests/contract/test_drift.py).

Where an accepted set was a choice, the reason is written beside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PROJECT = "moltworker"

# --- stacks ----------------------------------------------------------------------------------

# A stack name is part of every physical name: `moltworker-<stack>` (Worker, container
# application, AI Gateway: at most 63 of a-z, 0-9, '-') and `moltworker-<stack>-data` (an R2
# bucket: at most 63, no '-' at either end). 63 - len("moltworker-") - len("-data") = 47.
STACK_NAME_MAX = 63 - len(f"{PROJECT}-") - len("-data")
STACK_NAME = re.compile(rf"^[a-z0-9](?:[a-z0-9-]{{0,{STACK_NAME_MAX - 2}}}[a-z0-9])?$")
STACK_NAME_RULE = (
    f"lowercase letters, digits and '-' (not first or last), at most {STACK_NAME_MAX} "
    "characters: it is part of the bucket, Worker and container names"
)

# Production stacks keep their data whatever their config says. Deliberately wider than
# STACK_NAME (any case, '_' and '.' separators): a name the program refuses is still taken for
# production by the policy pack and by ops, so protection errs on the side of keeping data.
PRODUCTION_STACK = re.compile(r"^(prod|production)([-_.].*)?$", re.IGNORECASE)


def stack_name_problem(stack: str) -> str | None:
    """Why `stack` cannot name a moltworker stack, or None."""
    if STACK_NAME.match(stack):
        return None
    return f"stack name {stack!r} is not valid: use {STACK_NAME_RULE}"


def is_production_stack(stack: str) -> bool:
    return bool(PRODUCTION_STACK.match(stack))


# --- plain config values ---------------------------------------------------------------------


def parse_flag(raw: str | None, default: bool) -> bool | None:
    """A boolean setting: true/false in any case, blanks around ignored; unset is `default`.

    None means malformed. The program refuses it; every other reader treats it as false, the
    side that keeps protection on and nothing destroyed (`pulumi config set ephemeral True`
    stores the string "True", so case must not matter).
    """
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    return None


@dataclass(frozen=True)
class Bounds:
    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}..{self.hi}"


_WHOLE = re.compile(r"^[0-9]+$")


def parse_whole(raw: str, bounds: Bounds) -> int | None:
    """A whole number within `bounds`, digits only ('+5', '5.0', '1e3' are refused), or None."""
    value = raw.strip()
    if not _WHOLE.match(value) or not bounds.lo <= int(value) <= bounds.hi:
        return None
    return int(value)


# --- versions --------------------------------------------------------------------------------

# OpenClaw is installed with npm, whose versions are semver 2.0: X.Y.Z without leading zeros
# and an optional pre-release (`-beta.1`, `-beta-1`). Build metadata (`+…`) is refused: npm
# ignores it when comparing, so it does not pin one build. Four-part numbers, ranges and tags
# are not versions npm can install exactly.
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
EXACT_VERSION = re.compile(rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?$")


def is_exact_version(version: str) -> bool:
    return bool(EXACT_VERSION.match(version))


# A deployed stack moves to another OpenClaw version only through `ops upgrade` (config judged
# by that version, a boot on a copy of the state, a kept snapshot, rollback on failure), which
# runs its `pulumi up` with this variable naming the version it rehearsed. The Worker deploy
# refuses a version change without it; set it by hand to deploy a version untested.
OPENCLAW_REHEARSED_VAR = "MOLT_OPENCLAW_REHEARSED"


# --- models ----------------------------------------------------------------------------------

# provider/model. The model id may carry '/', '@' and ':' (OpenRouter's
# `anthropic/claude-3.5`, Workers AI's `@cf/meta/…`, Vertex's `claude…@20250929`, `:free`):
# OpenClaw and the AI Gateway route split at the first '/'. No ',' (MODEL_FALLBACKS is a
# comma-joined list) and no blank segment.
_MODEL_SEGMENT = r"[A-Za-z0-9@][A-Za-z0-9._:@-]*"
MODEL_REF = re.compile(rf"^([a-z][a-z0-9-]*)/({_MODEL_SEGMENT}(?:/{_MODEL_SEGMENT})*)$")


@dataclass(frozen=True)
class Provider:
    name: str  # as written before the '/' of a model reference
    config_key: str  # the stack config key of its API key (secret)
    env_var: str  # the container variable that carries the key
    gateway_path: str  # its path under the AI Gateway base URL
    api: str  # OpenClaw's wire format for it (its default, openai-completions, is not Anthropic's)


# The providers a deployed stack can use. The runtime always runs behind the AI Gateway and can
# route only these through it, so the program refuses any other provider at preview instead of
# deploying a container that exits 2 on every boot.
PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "anthropic", "anthropicApiKey", "ANTHROPIC_API_KEY", "anthropic", "anthropic-messages"
        ),
        Provider("openai", "openaiApiKey", "OPENAI_API_KEY", "openai", "openai-completions"),
    )
}


def parse_model_ref(ref: str) -> tuple[str, str] | None:
    """(provider, model id) of a provider/model reference, or None when malformed."""
    match = MODEL_REF.match(ref)
    return (match.group(1), match.group(2)) if match else None


def model_ref_problem(ref: str) -> str | None:
    """Why a deployed stack cannot use `ref`, or None."""
    parsed = parse_model_ref(ref)
    if parsed is None:
        return (
            f"{ref!r} is not in provider/model form (e.g. anthropic/claude-sonnet-4-5; the "
            "provider is lowercase, the model id may contain '/', '@', ':', '.', '-')"
        )
    if parsed[0] not in PROVIDERS:
        return (
            f"{ref!r}: provider {parsed[0]!r} cannot be routed through the AI Gateway by the "
            f"sandbox runtime (it would exit on every boot); use {' or '.join(PROVIDERS)}"
        )
    return None


# --- channels --------------------------------------------------------------------------------

DM_POLICIES = ("pairing", "allowlist", "open", "disabled")
CHANNELS = ("telegram", "discord", "slack")

# --- the sandbox container -------------------------------------------------------------------

# The instance types the Containers API accepts (cloudflare SDK:
# types/containers/application_create_params.py, `instance_type`).
INSTANCE_TYPES = ("lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4")
# One personal agent needs one instance; each instance bills and holds its own state. The
# policy pack's default bound is 1 and its config may raise it up to this.
MAX_INSTANCES = Bounds(1, 10)

# `<n>s|m|h` of at least a minute (the Worker's sleepAfter), or never. n has no leading zero and
# at most six digits, so the Worker and the program read the same numbers.
SLEEP_AFTER_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smh])$")
SLEEP_AFTER_MIN_S = 60
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def sleep_after_seconds(value: str) -> int | None:
    """Seconds of a valid sleepAfter (-1 for never), or None when it is not one."""
    if value == "never":
        return -1
    match = SLEEP_AFTER_DURATION.match(value)
    if not match:
        return None
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    return seconds if seconds >= SLEEP_AFTER_MIN_S else None


CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")

# --- snapshots -------------------------------------------------------------------------------

SNAPSHOT_KEEP = Bounds(1, 10_000)
SNAPSHOT_KEEP_DEFAULT = 30
# Seconds the runtime waits after a change before it snapshots (the runtime's own setting).
SNAPSHOT_DEBOUNCE_S = (0.0, 60.0)
SNAPSHOT_DEBOUNCE_DEFAULT_S = 2.0
SNAPSHOT_TRASH_DAYS = Bounds(1, 3650)
MULTIPART_ABORT_DAYS = Bounds(1, 365)


def parse_seconds(raw: str, lo: float, hi: float) -> float | None:
    """A finite number of seconds within lo..hi, or None."""
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or not lo <= value <= hi:
        return None
    return value


# --- secrets and variables -------------------------------------------------------------------

# The Worker passes these to the container at start, each only when set; the runtime redacts
# their values from every log line.
CONTAINER_SECRETS = (
    "OPENCLAW_GATEWAY_TOKEN",
    "MOLT_CONTROL_SECRET",
    "MOLT_CDP_SECRET",
    "MOLT_SNAPSHOT_KEY",
    "R2_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY",
    "AI_GATEWAY_TOKEN",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
)
# Plain vars the Worker passes to the container, each only when set.
CONTAINER_VARS = (
    "R2_ENDPOINT",
    "R2_BUCKET",
    "AI_GATEWAY_BASE_URL",
    "MODEL_PRIMARY",
    "MODEL_FALLBACKS",
    "TELEGRAM_DM_POLICY",
    "DISCORD_DM_POLICY",
    "SLACK_DM_POLICY",
    "MOLT_SNAPSHOT_KEEP",
)
# Secret bindings only the Worker reads (Access validation).
WORKER_ONLY_SECRETS = ("CF_ACCESS_AUD", "CF_ACCESS_TEAM_DOMAIN")

# Generated secrets a counter in the stack config replaces (`rotate<Name>`). The snapshot key is
# not among them: it decrypts every stored snapshot.
ROTATABLE = ("gatewayToken", "controlSecret", "cdpSecret")
ROTATE_BOUNDS = Bounds(0, 1_000_000)


def rotate_key(name: str) -> str:
    """The config key of a rotatable secret's counter: gatewayToken -> rotateGatewayToken."""
    return f"rotate{name[0].upper()}{name[1:]}"


# The Cloudflare API token lives in the provider's own namespace so one value serves both the
# cloudflare provider and the program's dynamic providers.
CLOUDFLARE_TOKEN_KEY = "cloudflare:apiToken"  # noqa: S105 - a key name, not a value
# Stack config keys that hold secrets (`secret: true` in Pulumi.yaml, no default).
SECRET_CONFIG_KEYS = (
    *(p.config_key for p in PROVIDERS.values()),
    "telegramBotToken",
    "discordBotToken",
    "slackBotToken",
    "slackAppToken",
)

# --- permission groups -----------------------------------------------------------------------

R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket"
ACCOUNT_SCOPE = "com.cloudflare.api.account"


@dataclass(frozen=True)
class PermissionGroup:
    name: str  # exactly as GET /accounts/{id}/tokens/permission_groups lists it
    scope: str
    # The id where Cloudflare publishes it (permission-group ids are global); None where it is
    # not published and the policy pack's config must name it.
    published_id: str | None = None


# The only groups the stack's tokens are given, one per token. The program looks each up by
# name (and refuses an id other than the published one); the policy pack allows exactly these.
R2_BUCKET_ITEM_WRITE = PermissionGroup(
    # Published in Cloudflare's R2 documentation (API tokens: permission groups).
    "Workers R2 Storage Bucket Item Write",
    R2_BUCKET_SCOPE,
    "2efd5506f9c8494dacb1fa10a3e7d5b6",
)
AI_GATEWAY_RUN = PermissionGroup("AI Gateway Run", ACCOUNT_SCOPE)
PERMISSION_GROUPS = (R2_BUCKET_ITEM_WRITE, AI_GATEWAY_RUN)

# --- stack config defaults -------------------------------------------------------------------

# The default of every non-secret key, as Pulumi.yaml's schema declares it (a test compares the
# two, values included); the program's readers take their defaults from here.
DEFAULTS: dict[str, str | int | bool | list[str]] = {
    "accountId": "",
    "workerName": "",
    "workersSubdomain": "",
    "customDomain": "",
    "zoneId": "",
    "accessTeamDomain": "",
    "adminEmails": [],
    "adminEmailDomains": [],
    "accessServiceToken": False,
    "adoptWorker": False,
    "modelPrimary": "anthropic/claude-sonnet-4-5",
    "modelFallbacks": [],
    "aiGatewayRateLimit": 120,
    "aiGatewayRateLimitIntervalSeconds": 60,
    "aiGatewayLogs": True,
    "aiGatewayCacheTtlSeconds": 0,
    **{f"{channel}DmPolicy": "pairing" for channel in CHANNELS},
    "instanceType": "standard-1",
    "maxInstances": 1,
    "sleepAfter": "10m",
    "openclawVersion": "",
    "snapshotKeep": SNAPSHOT_KEEP_DEFAULT,
    "snapshotTrashDays": 30,
    "multipartAbortDays": 7,
    "ephemeral": False,
    "debugRoutes": False,
    "cronSchedule": "*/5 * * * *",
    "workerDir": "worker",
    "workerBundleDir": "",
    "containerDir": "container",
    **{rotate_key(name): 0 for name in ROTATABLE},
}
# Bounds of the whole-number keys.
BOUNDS: dict[str, Bounds] = {
    "aiGatewayRateLimit": Bounds(1, 1_000_000),
    "aiGatewayRateLimitIntervalSeconds": Bounds(1, 3600),
    "aiGatewayCacheTtlSeconds": Bounds(0, 30 * 24 * 3600),
    "maxInstances": MAX_INSTANCES,
    "snapshotKeep": SNAPSHOT_KEEP,
    "snapshotTrashDays": SNAPSHOT_TRASH_DAYS,
    "multipartAbortDays": MULTIPART_ABORT_DAYS,
    **{rotate_key(name): ROTATE_BOUNDS for name in ROTATABLE},
}


def default_str(key: str) -> str:
    value = DEFAULTS[key]
    assert isinstance(value, str), key
    return value


def default_int(key: str) -> int:
    value = DEFAULTS[key]
    assert isinstance(value, int) and not isinstance(value, bool), key
    return value


def default_bool(key: str) -> bool:
    value = DEFAULTS[key]
    assert isinstance(value, bool), key
    return value
