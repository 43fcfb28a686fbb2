"""Which value feeds which Worker binding (the names are docs/interfaces.md's)."""

from __future__ import annotations

import pulumi

from infra.access import Access
from infra.ai_gateway import AiGateway
from infra.generated_secrets import GeneratedSecrets
from infra.settings import Settings
from infra.storage import Storage

# How old the last snapshot of pending changes may get before the cron job takes one: the
# Worker's own default (worker/src/scheduled.ts CRON_SNAPSHOT_AFTER_DEFAULT; a test ties them).
CRON_SNAPSHOT_AFTER = "5m"


def worker_bindings(
    s: Settings, secrets: GeneratedSecrets, storage: Storage, access: Access, gateway: AiGateway
) -> tuple[dict[str, pulumi.Input[str]], dict[str, pulumi.Input[str]]]:
    """(secret bindings, plain-text vars) for the Worker; optional secrets only when set."""
    worker_secrets: dict[str, pulumi.Input[str]] = {
        "OPENCLAW_GATEWAY_TOKEN": secrets.gateway_token,
        "MOLT_CONTROL_SECRET": secrets.control_secret,
        "MOLT_CDP_SECRET": secrets.cdp_secret,
        "MOLT_SNAPSHOT_KEY": secrets.snapshot_key,
        "R2_ACCESS_KEY_ID": storage.access_key_id,
        "R2_SECRET_ACCESS_KEY": storage.secret_access_key,
        "AI_GATEWAY_TOKEN": gateway.token,
        "CF_ACCESS_AUD": access.aud,
        "CF_ACCESS_TEAM_DOMAIN": access.team_domain,
    }
    optional = {
        "ANTHROPIC_API_KEY": s.provider_keys.get("anthropic"),
        "OPENAI_API_KEY": s.provider_keys.get("openai"),
        "TELEGRAM_BOT_TOKEN": s.channels.telegram_token,
        "DISCORD_BOT_TOKEN": s.channels.discord_token,
        "SLACK_BOT_TOKEN": s.channels.slack_bot_token,
        "SLACK_APP_TOKEN": s.channels.slack_app_token,
    }
    worker_secrets.update({k: v for k, v in optional.items() if v is not None})
    worker_vars: dict[str, pulumi.Input[str]] = {
        "R2_ENDPOINT": storage.endpoint,
        "R2_BUCKET": storage.bucket_name,
        "AI_GATEWAY_BASE_URL": gateway.base_url,
        "MODEL_PRIMARY": s.model_primary.ref,
        "MODEL_FALLBACKS": ",".join(m.ref for m in s.model_fallbacks),
        "MOLT_SNAPSHOT_KEEP": str(s.snapshots.keep),
        "SLEEP_AFTER": s.sandbox.sleep_after,
        "CRON_SNAPSHOT_AFTER": CRON_SNAPSHOT_AFTER,
        "DEBUG_ROUTES": "true" if s.debug_routes else "false",
    }
    # A channel's DM policy goes only with its token: the runtime refuses a policy for a channel
    # it has no token for (a hand-set variable with no channel is a mistake), and every stack
    # has a policy for every channel through the schema's defaults.
    channels = s.channels
    configured = {
        "TELEGRAM_DM_POLICY": (channels.telegram_token, channels.telegram_dm_policy),
        "DISCORD_DM_POLICY": (channels.discord_token, channels.discord_dm_policy),
        "SLACK_DM_POLICY": (channels.slack_bot_token, channels.slack_dm_policy),
    }
    worker_vars.update(
        {k: policy for k, (token, policy) in configured.items() if token is not None}
    )
    return worker_secrets, worker_vars
