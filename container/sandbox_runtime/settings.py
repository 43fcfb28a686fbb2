"""The runtime's configuration, read once from the container environment and validated whole.

Every problem is collected before the boot stops, so a person fixing a deployment sees all of
them at once, each as one sentence naming the variable and the fix.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

# The runtime ships alone in the image (its build context is container/), so it cannot import the
# repository's `contract` package. The values below that the contract also states (DM policies,
# the container's secret names, the routable providers, the model-reference grammar, the
# snapshot bounds) are copies, and tests/contract ties each to the contract, values included.

Bind = Literal["loopback", "lan"]
DmPolicy = Literal["pairing", "allowlist", "open", "disabled"]

DM_POLICIES: tuple[DmPolicy, ...] = ("pairing", "allowlist", "open", "disabled")

# Values of these variables are secrets: they are redacted from every log line and never
# reach a command line. MOLT_AIG_AUTHORIZATION is derived by the runtime (see gateway_env).
SECRET_VARS: tuple[str, ...] = (
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

# Providers the runtime can route through Cloudflare AI Gateway, with the gateway's path for each
# and the variable holding the provider key.
PROVIDERS: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic", "ANTHROPIC_API_KEY"),
    "openai": ("openai", "OPENAI_API_KEY"),
}
# The wire format of each provider. OpenClaw speaks `openai-completions` to any provider that has
# a base URL and no `api`, which AI Gateway's Anthropic route (and Anthropic) do not serve.
PROVIDER_APIS: dict[str, str] = {
    "anthropic": "anthropic-messages",
    "openai": "openai-completions",
}

MIN_SECRET_LEN = 16
# provider/model; the model id may carry '/', '@' and ':' (OpenClaw splits at the first '/').
_MODEL_SEGMENT = r"[A-Za-z0-9@][A-Za-z0-9._:@-]*"
_MODEL_RE = re.compile(rf"^([a-z][a-z0-9-]*)/({_MODEL_SEGMENT}(?:/{_MODEL_SEGMENT})*)$")

SNAPSHOT_KEEP_VAR = "MOLT_SNAPSHOT_KEEP"
SNAPSHOT_KEEP_BOUNDS = (1, 10_000)
SNAPSHOT_KEEP_DEFAULT = 30
SNAPSHOT_DEBOUNCE_VAR = "MOLT_SNAPSHOT_DEBOUNCE_S"
SNAPSHOT_DEBOUNCE_BOUNDS_S = (0.0, 60.0)
SNAPSHOT_DEBOUNCE_DEFAULT_S = 2.0


def read_snapshot_keep(env: Mapping[str, str]) -> tuple[int, str | None]:
    """(generations to keep, the problem or None): digits only, within the bounds."""
    raw = env.get(SNAPSHOT_KEEP_VAR, "").strip()
    if not raw:
        return SNAPSHOT_KEEP_DEFAULT, None
    lo, hi = SNAPSHOT_KEEP_BOUNDS
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        return SNAPSHOT_KEEP_DEFAULT, (
            f"{SNAPSHOT_KEEP_VAR}={raw!r}: set it to a whole number from {lo} to {hi}."
        )
    return int(raw), None


def read_snapshot_debounce(env: Mapping[str, str]) -> tuple[float, str | None]:
    """(seconds to wait after a change before a snapshot, the problem or None)."""
    raw = env.get(SNAPSHOT_DEBOUNCE_VAR, "").strip()
    if not raw:
        return SNAPSHOT_DEBOUNCE_DEFAULT_S, None
    lo, hi = SNAPSHOT_DEBOUNCE_BOUNDS_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not lo <= value <= hi:
        return SNAPSHOT_DEBOUNCE_DEFAULT_S, (
            f"{SNAPSHOT_DEBOUNCE_VAR}={raw!r}: set it to seconds from {lo:g} to {hi:g}."
        )
    return value, None


class ConfigError(Exception):
    """The environment cannot run the sandbox; `problems` holds one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Channel:
    name: Literal["telegram", "discord", "slack"]
    dm_policy: DmPolicy
    token_vars: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    bind: Bind
    gateway_port: int
    control_port: int
    cdp_port: int
    state_dir: Path
    runtime_dir: Path
    openclaw_bin: str
    model_primary: str | None
    model_fallbacks: tuple[str, ...]
    ai_gateway_base_url: str | None
    model_base_url: str | None
    channels: tuple[Channel, ...]
    trusted_proxies: tuple[str, ...]
    public_origin: str | None
    cdp_upstream: str | None
    snapshot_keep: int
    snapshot_debounce_s: float
    env: Mapping[str, str] = field(repr=False)

    @property
    def config_path(self) -> Path:
        return self.runtime_dir / "openclaw.json"

    @property
    def workspace_dir(self) -> Path:
        return self.state_dir / "workspace"

    @property
    def listen_host(self) -> str:
        return "0.0.0.0" if self.bind == "lan" else "127.0.0.1"  # noqa: S104 - the Worker's path in

    def secret(self, name: str) -> str | None:
        value = self.env.get(name, "")
        return value or None

    def secret_values(self) -> list[str]:
        return [v for name in SECRET_VARS if (v := self.env.get(name, ""))]

    def model_status(self) -> dict[str, object]:
        """Names and whether the primary model's provider has a key: never a key itself."""
        provider = self.model_primary.split("/", 1)[0] if self.model_primary else None
        if provider in PROVIDERS:
            has_key = self.secret(PROVIDERS[provider][1]) is not None
        else:
            # OpenClaw's own default model, or a provider it resolves itself: any known key counts.
            has_key = any(self.secret(var) for _path, var in PROVIDERS.values())
        return {
            "primary": self.model_primary,
            "fallbacks": list(self.model_fallbacks),
            "key": has_key,
        }

    def providers_in_use(self) -> list[str]:
        models = [m for m in (self.model_primary, *self.model_fallbacks) if m]
        seen: list[str] = []
        for model in models:
            provider = model.split("/", 1)[0]
            if provider not in seen:
                seen.append(provider)
        return seen


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the whole environment; raise ConfigError listing every problem."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    reader = _Reader(env, problems)

    for name in ("OPENCLAW_GATEWAY_TOKEN", "MOLT_CONTROL_SECRET"):
        reader.required_secret(name)
    # MOLT_SNAPSHOT_KEY and the R2 settings are checked by the snapshot subsystem itself.
    for name in SECRET_VARS:
        if name not in ("OPENCLAW_GATEWAY_TOKEN", "MOLT_CONTROL_SECRET", "MOLT_SNAPSHOT_KEY"):
            reader.optional_secret(name)

    bind = reader.choice("MOLT_BIND", ("loopback", "lan"), "loopback")
    ports = {
        name: reader.port(name, default)
        for name, default in (
            ("MOLT_GATEWAY_PORT", 18789),
            ("MOLT_CONTROL_PORT", 8788),
            ("MOLT_CDP_PORT", 9222),
        )
    }
    if len(set(ports.values())) != len(ports):
        problems.append(
            "MOLT_GATEWAY_PORT, MOLT_CONTROL_PORT and MOLT_CDP_PORT must be three different "
            "ports; change the ones that collide."
        )

    state_dir = reader.path("MOLT_STATE_DIR", "/data/state")
    runtime_dir = reader.path("MOLT_RUNTIME_DIR", f"/tmp/molt-runtime-{os.getuid()}")  # noqa: S108
    if _inside(runtime_dir, state_dir) or _inside(state_dir, runtime_dir):
        problems.append(
            f"MOLT_RUNTIME_DIR ({runtime_dir}) and MOLT_STATE_DIR ({state_dir}) overlap; the "
            "rendered config holds secret references and must live outside the snapshotted "
            "state, so point MOLT_RUNTIME_DIR elsewhere."
        )

    primary = reader.model("MODEL_PRIMARY")
    fallbacks = reader.model_list("MODEL_FALLBACKS")
    if fallbacks and not primary:
        problems.append("MODEL_FALLBACKS is set without MODEL_PRIMARY; set MODEL_PRIMARY too.")
    if primary and primary in fallbacks:
        problems.append(f"MODEL_FALLBACKS repeats the primary model {primary}; remove it.")

    aig_url = reader.url("AI_GATEWAY_BASE_URL", ("https",))
    model_url = reader.url("MODEL_BASE_URL", ("http", "https"))
    if aig_url and model_url:
        problems.append(
            "AI_GATEWAY_BASE_URL and MODEL_BASE_URL are both set; MODEL_BASE_URL is for local "
            "runs only, so unset one of them."
        )
    if env.get("AI_GATEWAY_TOKEN") and not aig_url:
        problems.append("AI_GATEWAY_TOKEN is set without AI_GATEWAY_BASE_URL; set the base URL.")
    if aig_url and not env.get("AI_GATEWAY_TOKEN"):
        problems.append(
            "AI_GATEWAY_BASE_URL is set without AI_GATEWAY_TOKEN; the AI Gateway is "
            "authenticated, so set AI_GATEWAY_TOKEN (the cf-aig-authorization token)."
        )
    if aig_url or model_url:
        for provider in _providers(primary, fallbacks):
            if provider not in PROVIDERS:
                problems.append(
                    f"model provider {provider!r} cannot be routed through "
                    f"{'AI_GATEWAY_BASE_URL' if aig_url else 'MODEL_BASE_URL'}; use one of "
                    f"{', '.join(sorted(PROVIDERS))}."
                )

    channels = _channels(reader, env, problems)
    proxies = reader.cidrs("MOLT_TRUSTED_PROXIES")
    public_origin = reader.url("MOLT_PUBLIC_ORIGIN", ("https", "http"), origin_only=True)

    cdp_upstream = reader.url("MOLT_CDP_UPSTREAM", ("ws", "wss"))
    if cdp_upstream and urlsplit(cdp_upstream).scheme == "wss" and not env.get("MOLT_CDP_SECRET"):
        problems.append(
            "MOLT_CDP_UPSTREAM is a wss:// URL but MOLT_CDP_SECRET is not set; the Worker's "
            "/cdp requires the shared secret, so set MOLT_CDP_SECRET."
        )
    if cdp_upstream and (urlsplit(cdp_upstream).username or urlsplit(cdp_upstream).password):
        problems.append(
            "MOLT_CDP_UPSTREAM carries credentials in the URL; remove them and set "
            "MOLT_CDP_SECRET instead (it is sent in a header)."
        )

    keep, keep_problem = read_snapshot_keep(env)
    debounce, debounce_problem = read_snapshot_debounce(env)
    problems += [p for p in (keep_problem, debounce_problem) if p]
    openclaw_bin = env.get("MOLT_OPENCLAW_BIN", "").strip() or "openclaw"

    if problems:
        raise ConfigError(problems)
    return Settings(
        bind=bind,  # type: ignore[arg-type]
        gateway_port=ports["MOLT_GATEWAY_PORT"],
        control_port=ports["MOLT_CONTROL_PORT"],
        cdp_port=ports["MOLT_CDP_PORT"],
        state_dir=state_dir,
        runtime_dir=runtime_dir,
        openclaw_bin=openclaw_bin,
        model_primary=primary,
        model_fallbacks=tuple(fallbacks),
        ai_gateway_base_url=aig_url.rstrip("/") if aig_url else None,
        model_base_url=model_url.rstrip("/") if model_url else None,
        channels=tuple(channels),
        trusted_proxies=tuple(proxies),
        public_origin=public_origin,
        cdp_upstream=cdp_upstream,
        snapshot_keep=keep,
        snapshot_debounce_s=debounce,
        env=env,
    )


def _providers(primary: str | None, fallbacks: list[str]) -> list[str]:
    return sorted({m.split("/", 1)[0] for m in ([primary] if primary else []) + fallbacks})


def _channels(reader: _Reader, env: Mapping[str, str], problems: list[str]) -> list[Channel]:
    specs: list[tuple[Literal["telegram", "discord", "slack"], tuple[str, ...]]] = [
        ("telegram", ("TELEGRAM_BOT_TOKEN",)),
        ("discord", ("DISCORD_BOT_TOKEN",)),
        ("slack", ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")),
    ]
    channels: list[Channel] = []
    for name, token_vars in specs:
        policy_var = f"{name.upper()}_DM_POLICY"
        policy = reader.choice(policy_var, DM_POLICIES, "pairing")
        present = [v for v in token_vars if env.get(v)]
        if not present:
            if env.get(policy_var):
                problems.append(
                    f"{policy_var} is set but {' and '.join(token_vars)} is not; set the "
                    f"token or remove {policy_var}."
                )
            continue
        missing = [v for v in token_vars if not env.get(v)]
        if missing:
            problems.append(
                f"{name} needs {' and '.join(token_vars)} together (Socket Mode); "
                f"set {' and '.join(missing)}."
            )
            continue
        channels.append(Channel(name=name, dm_policy=policy, token_vars=token_vars))  # type: ignore[arg-type]
    return channels


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


class _Reader:
    """Typed reads of single variables; each bad value appends one sentence to `problems`."""

    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self.env = env
        self.problems = problems

    def _get(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def required(self, name: str, fix: str) -> str | None:
        value = self._get(name)
        if value is None:
            self.problems.append(f"{name} is not set; {fix}.")
        return value

    def required_secret(self, name: str) -> None:
        value = self.required(name, f"set it to a random value of at least {MIN_SECRET_LEN} chars")
        if value is not None:
            self._check_secret(name, value)

    def optional_secret(self, name: str) -> None:
        value = self._get(name)
        if value is not None:
            self._check_secret(name, value)

    def _check_secret(self, name: str, value: str) -> None:
        raw = self.env[name]
        if raw != raw.strip():
            self.problems.append(
                f"{name} has leading or trailing whitespace; paste the value without it."
            )
        elif any(c.isspace() for c in value) or not value.isprintable():
            self.problems.append(f"{name} contains whitespace or control characters; re-copy it.")
        elif len(value) < 8 or (name in ("OPENCLAW_GATEWAY_TOKEN",) and len(value) < 16):
            self.problems.append(
                f"{name} is too short to be a real secret ({len(value)} chars); set the full value."
            )
        elif name == "MOLT_CONTROL_SECRET" and len(value.encode()) < 32:
            self.problems.append(
                "MOLT_CONTROL_SECRET is shorter than 32 bytes; HS256 needs a key of at least "
                "32 random bytes, so generate a longer one."
            )
        elif value in SECRET_VARS or re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", value):
            self.problems.append(
                f"{name} looks like a variable name ({value}), not a secret value; set the "
                "value itself."
            )

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self._get(name)
        if value is None:
            return default
        if value not in allowed:
            self.problems.append(f"{name}={value!r} is not one of {', '.join(allowed)}.")
            return default
        return value

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, minimum=1, maximum=65535)

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name}={value!r} is not a whole number.")
            return default
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
            self.problems.append(f"{name}={number} must be {bound}.")
            return default
        return number

    def path(self, name: str, default: str) -> Path:
        value = self._get(name) or default
        path = Path(value)
        if not path.is_absolute():
            self.problems.append(f"{name}={value!r} must be an absolute path.")
        return Path(os.path.normpath(path))

    def url(self, name: str, schemes: tuple[str, ...], *, origin_only: bool = False) -> str | None:
        value = self._get(name)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.problems.append(f"{name} is not a valid URL.")
            return None
        if parts.scheme not in schemes or not parts.hostname:
            self.problems.append(
                f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL with a host."
            )
            return None
        if parts.query or parts.fragment:
            self.problems.append(f"{name} must not have a query or fragment; remove them.")
            return None
        if origin_only and parts.path not in ("", "/"):
            self.problems.append(f"{name} must be an origin (scheme://host[:port]) without a path.")
            return None
        return value.rstrip("/") if origin_only else value

    def model(self, name: str) -> str | None:
        value = self._get(name)
        if value is not None and not _MODEL_RE.match(value):
            self.problems.append(
                f"{name}={value!r} is not provider/model (e.g. anthropic/claude-sonnet-4-5)."
            )
            return None
        return value

    def model_list(self, name: str) -> list[str]:
        value = self._get(name)
        if value is None:
            return []
        items = [item.strip() for item in value.split(",")]
        bad = [item for item in items if not _MODEL_RE.match(item)]
        if bad:
            self.problems.append(
                f"{name} has entries that are not provider/model: {', '.join(map(repr, bad))}."
            )
            return []
        if len(set(items)) != len(items):
            self.problems.append(f"{name} lists a model twice; remove the duplicate.")
            return []
        return items

    def cidrs(self, name: str) -> list[str]:
        value = self._get(name)
        if value is None:
            return []
        result: list[str] = []
        for item in (i.strip() for i in value.split(",")):
            try:
                result.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError:
                self.problems.append(
                    f"{name} entry {item!r} is not a CIDR (e.g. 10.0.0.0/8) with host bits zero."
                )
        return result
