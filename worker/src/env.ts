/**
 * The Worker's environment as it really arrives: `wrangler types` describes the bindings declared in
 * wrangler.jsonc, while secrets and optional vars (docs/interfaces.md) may or may not be set, so
 * they are typed as optional and every reader has to handle their absence.
 */
export const GATEWAY_PORT = 18789;
export const CONTROL_PORT = 8788;

/** Secrets the container receives as environment variables, each only when set. */
export const CONTAINER_SECRET_NAMES = [
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
] as const;

/** Plain vars the container receives as environment variables, each only when set. */
export const CONTAINER_VAR_NAMES = [
	"R2_ENDPOINT",
	"R2_BUCKET",
	"AI_GATEWAY_BASE_URL",
	"MODEL_PRIMARY",
	"MODEL_FALLBACKS",
	"TELEGRAM_DM_POLICY",
	"DISCORD_DM_POLICY",
	"SLACK_DM_POLICY",
	"MOLT_SNAPSHOT_KEEP",
] as const;

type ContainerSecretName = (typeof CONTAINER_SECRET_NAMES)[number];
type ContainerVarName = (typeof CONTAINER_VAR_NAMES)[number];

export type AppEnv = Omit<Env, "SLEEP_AFTER" | "DEBUG_ROUTES"> & {
	[K in ContainerSecretName | ContainerVarName]?: string;
} & {
	SLEEP_AFTER?: string;
	DEBUG_ROUTES?: string;
	CRON_SNAPSHOT_AFTER?: string;
	CF_ACCESS_AUD?: string;
	CF_ACCESS_TEAM_DOMAIN?: string;
	MOLT_LOCAL_BACKEND?: string;
	LOCAL_GATEWAY_URL?: string;
	LOCAL_CONTROL_URL?: string;
	LOCAL_CDP_URL?: string;
	LOCAL_ADMIN_TOKEN?: string;
};

/** A setting counts as present only when it holds something besides whitespace. */
export function setting(env: AppEnv, name: keyof AppEnv): string | undefined {
	const value = env[name];
	if (typeof value !== "string") return undefined;
	const trimmed = value.trim();
	return trimmed === "" ? undefined : trimmed;
}

export function isLocalMode(env: AppEnv): boolean {
	return env.MOLT_LOCAL_BACKEND === "1";
}
