"""Render OpenClaw's `openclaw.json` from the settings, every boot.

Credentials never appear in the file: each one is an OpenClaw SecretRef naming an environment
variable (`{"source": "env", ...}`), resolved by the gateway from its own process env. The file
still lives outside the state directory, mode 0600, so it is neither snapshotted nor readable by
another user. Every key used here is from OpenClaw's own schema (`openclaw config schema`); the
tests run `openclaw config validate` over a full rendering.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .settings import PROVIDER_APIS, PROVIDERS, Settings
from .skills import skills_root

# The gateway process gets the full `cf-aig-authorization` header value in this variable,
# because a SecretRef resolves to the raw value and the header needs the `Bearer ` prefix.
AIG_HEADER_VAR = "MOLT_AIG_AUTHORIZATION"
BROWSER_PROFILE = "cloudflare"

# OpenClaw limits failed gateway sign-ins whether or not this is set (its defaults: 10 in a
# minute, then 5 minutes locked out); written out so the choice is ours and visible to its audit
# (`gateway.auth_no_rate_limit`). The Worker strips client-address headers (OpenClaw refuses them
# from a peer outside trustedProxies, and the platform's proxy address is not ours to pin), so
# every browser shares the proxy's bucket: a lockout locks out everyone. The gateway token is 192
# random bits, which no rate of guessing reaches, so the lockout is kept short: it bounds how
# long a stranger can keep the owner out, not how fast the token can be guessed. Loopback stays
# exempt for the runtime's own CLI calls. docs/architecture.md "Sign-in rate limit".
AUTH_RATE_LIMIT = {
    "maxAttempts": 10,
    "windowMs": 60_000,
    "lockoutMs": 60_000,
    "exemptLoopback": True,
}


def env_ref(name: str) -> dict[str, str]:
    return {"source": "env", "provider": "default", "id": name}


def render(settings: Settings) -> dict[str, Any]:
    gateway: dict[str, Any] = {
        "mode": "local",
        "port": settings.gateway_port,
        "bind": settings.bind,
        "auth": {
            "mode": "token",
            "token": env_ref("OPENCLAW_GATEWAY_TOKEN"),
            "rateLimit": dict(AUTH_RATE_LIMIT),
        },
        # Every browser reaches the gateway through the Worker, from loopback (local run) or the
        # container proxy, so "local" never means "the owner at the console": OpenClaw's silent
        # local pairing would approve any holder of the gateway token without the admin.
        "nodes": {"pairing": {"autoApproveLocal": False}},
    }
    if settings.trusted_proxies:
        gateway["trustedProxies"] = list(settings.trusted_proxies)
    if settings.public_origin:
        gateway["publicOrigin"] = settings.public_origin
        gateway["controlUi"] = {"allowedOrigins": [settings.public_origin]}

    config: dict[str, Any] = {
        "gateway": gateway,
        "agents": {"defaults": _agent_defaults(settings)},
        "browser": _browser(settings),
        # The runtime's skills are read where the package installed them, not copied into the
        # workspace: see sandbox_runtime.skills.
        "skills": {"load": {"extraDirs": [str(skills_root())]}},
    }
    providers = _providers(settings)
    if providers:
        config["models"] = {"providers": providers}
    channels = _channels(settings)
    if channels:
        config["channels"] = channels
    return config


def _agent_defaults(settings: Settings) -> dict[str, Any]:
    defaults: dict[str, Any] = {"workspace": str(settings.workspace_dir)}
    if settings.model_primary:
        model: dict[str, Any] = {"primary": settings.model_primary}
        if settings.model_fallbacks:
            model["fallbacks"] = list(settings.model_fallbacks)
        defaults["model"] = model
    return defaults


def _providers(settings: Settings) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for provider in settings.providers_in_use():
        if provider not in PROVIDERS:
            # Any other provider keeps OpenClaw's built-in endpoint and credential lookup.
            continue
        path, key_var = PROVIDERS[provider]
        entry: dict[str, Any] = {}
        if settings.ai_gateway_base_url:
            entry["baseUrl"] = f"{settings.ai_gateway_base_url}/{path}"
            entry["api"] = PROVIDER_APIS[provider]
            entry["headers"] = {"cf-aig-authorization": env_ref(AIG_HEADER_VAR)}
        elif settings.model_base_url:
            entry["baseUrl"] = settings.model_base_url
            entry["api"] = PROVIDER_APIS[provider]
        if settings.secret(key_var):
            entry["apiKey"] = env_ref(key_var)
        if entry:
            providers[provider] = entry
    return providers


def _channels(settings: Settings) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for channel in settings.channels:
        entry: dict[str, Any] = {"enabled": True, "dmPolicy": channel.dm_policy}
        if channel.dm_policy == "open":
            # OpenClaw requires the explicit wildcard to accept DMs from anyone.
            entry["allowFrom"] = ["*"]
        if channel.name == "telegram":
            entry["botToken"] = env_ref("TELEGRAM_BOT_TOKEN")
        elif channel.name == "discord":
            entry["token"] = env_ref("DISCORD_BOT_TOKEN")
        else:
            entry["mode"] = "socket"
            entry["botToken"] = env_ref("SLACK_BOT_TOKEN")
            entry["appToken"] = env_ref("SLACK_APP_TOKEN")
        channels[channel.name] = entry
    return channels


def _browser(settings: Settings) -> dict[str, Any]:
    return {
        "enabled": True,
        "defaultProfile": BROWSER_PROFILE,
        "profiles": {
            BROWSER_PROFILE: {
                # The runtime's CDP bridge; attachOnly because OpenClaw must not try to launch or
                # own a browser behind a loopback port it did not start.
                "cdpUrl": f"http://127.0.0.1:{settings.cdp_port}",
                "attachOnly": True,
            }
        },
    }


def write_config(settings: Settings, config: dict[str, Any]) -> Path:
    """Write atomically with mode 0600 in a 0700 directory; return the path."""
    directory = settings.runtime_dir
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_uid != os.getuid():
        # Someone else could read or swap the config there.
        raise PermissionError(
            f"{directory} belongs to another user; point MOLT_RUNTIME_DIR at a directory of "
            "the runtime's own user"
        )
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".openclaw.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, settings.config_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return settings.config_path
