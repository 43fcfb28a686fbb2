/**
 * What the container is started with, derived from the Worker's settings (docs/interfaces.md).
 * Pure functions, so the rules are tested in workerd even though the container is not.
 */
import { controlSecretProblem } from "./control";
import { type AppEnv, CONTAINER_SECRET_NAMES, CONTAINER_VAR_NAMES, setting } from "./env";
import { isLoopbackHost } from "./local";

/** Settings without which the runtime cannot keep the agent's data safe, so it is not started. */
const REQUIRED_FOR_CONTAINER = [
	"OPENCLAW_GATEWAY_TOKEN",
	"MOLT_SNAPSHOT_KEY",
	"R2_ENDPOINT",
	"R2_BUCKET",
	"R2_ACCESS_KEY_ID",
	"R2_SECRET_ACCESS_KEY",
] as const;

const HOST_NAME =
	/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export type SleepAfter = { seconds: number } | "never";

/**
 * `<n>s|m|h` with n of one to six digits and no leading zero. The program validates sleepAfter
 * with the same rule (contract.SLEEP_AFTER; tests/contract runs both over one table of values).
 */
export const SLEEP_AFTER_DURATION = /^([1-9][0-9]{0,5})([smh])$/;
export const SLEEP_AFTER_MIN_S = 60;

/** `SLEEP_AFTER` is `<n>s`, `<n>m`, `<n>h` or `never`; unset means ten minutes. */
export function parseSleepAfter(raw: string | undefined): SleepAfter | { error: string } {
	const value = raw?.trim() || "10m";
	if (value === "never") return "never";
	const match = SLEEP_AFTER_DURATION.exec(value);
	if (!match) {
		return {
			error: `SLEEP_AFTER is "${value.slice(0, 20)}", not a duration: use e.g. 30s, 10m, 2h or never.`,
		};
	}
	const amount = Number(match[1]);
	const seconds = amount * (match[2] === "h" ? 3600 : match[2] === "m" ? 60 : 1);
	if (seconds < SLEEP_AFTER_MIN_S) {
		return { error: "SLEEP_AFTER is under a minute: use at least 1m." };
	}
	return { seconds };
}

/** The first problem that stops the container from being started, as a sentence with the fix. */
export function containerConfigProblem(env: AppEnv): string | undefined {
	for (const name of REQUIRED_FOR_CONTAINER) {
		if (!setting(env, name)) {
			return `The Worker setting ${name} is not set: pulumi up sets it from the stack config.`;
		}
	}
	const control = controlSecretProblem(setting(env, "MOLT_CONTROL_SECRET"));
	if (control) return control;
	const sleep = parseSleepAfter(env.SLEEP_AFTER);
	if (typeof sleep === "object" && "error" in sleep) return sleep.error;
	return undefined;
}

/**
 * The origin browsers use for this Worker, from the request that started the container (an
 * origin, or a bare host name as earlier versions stored it). A deployed Worker is always
 * `https://<host>`, whatever scheme or port the request named. Only a loopback origin, i.e.
 * `wrangler dev` on this machine, keeps its own scheme and port.
 */
export function publicOrigin(address: string): string | undefined {
	let url: URL;
	try {
		url = new URL(address.includes("://") ? address : `https://${address}`);
	} catch {
		return undefined;
	}
	if (url.username || url.password || (url.protocol !== "https:" && url.protocol !== "http:")) {
		return undefined;
	}
	if (isLoopbackHost(url.hostname)) return url.origin;
	const host = url.hostname.toLowerCase();
	return HOST_NAME.test(host) ? `https://${host}` : undefined;
}

/** The container's environment: listed names only, optional ones only when set. */
export function containerEnv(env: AppEnv, publicAddress: string): Record<string, string> {
	const vars: Record<string, string> = {};
	for (const name of [...CONTAINER_SECRET_NAMES, ...CONTAINER_VAR_NAMES]) {
		const value = setting(env, name);
		if (value !== undefined) vars[name] = value;
	}
	vars.MOLT_STORE = "r2";
	const origin = publicOrigin(publicAddress);
	if (origin) {
		// OpenClaw accepts Control UI browsers only from its configured public origin.
		vars.MOLT_PUBLIC_ORIGIN = origin;
		// The agent's browser comes back through this Worker's /cdp: wss:// for https.
		if (vars.MOLT_CDP_SECRET) vars.MOLT_CDP_UPSTREAM = `${origin.replace(/^http/, "ws")}/cdp`;
	}
	return vars;
}
