/**
 * The local run (`make dev`): the same Worker in workerd, proxying to the runtime, the gateway and
 * a Chromium on loopback, with a shared admin token in place of Cloudflare Access. The mode is
 * refused outright unless every address involved is loopback, so it cannot be switched on by
 * accident in front of the internet.
 */
import { bearerToken, secretEquals } from "./compare";
import { type AppEnv, setting } from "./env";
import { readCookie } from "./http";

export const ADMIN_COOKIE = "molt_admin";

/** The admin sign-in of the local run, in place of Cloudflare Access. */
export type LocalAdmin = { adminToken: string };

export type LocalConfig = LocalAdmin & {
	gateway: URL;
	control: URL;
	cdp: URL;
};

/** 127.0.0.0/8, ::1 and localhost; nothing else counts as loopback. */
export function isLoopbackHost(hostname: string): boolean {
	const host = hostname.toLowerCase();
	if (host === "localhost" || host === "[::1]" || host === "::1") return true;
	const octets = host.split(".");
	if (octets.length !== 4 || octets[0] !== "127") return false;
	return octets.every((octet) => /^\d{1,3}$/.test(octet) && Number(octet) <= 255);
}

function loopbackUrl(env: AppEnv, name: keyof AppEnv): URL | string {
	const raw = setting(env, name);
	if (!raw) return `${String(name)} is not set: set it to http://127.0.0.1:<port>.`;
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		return `${String(name)} is not a URL: set it to http://127.0.0.1:<port>.`;
	}
	if (url.protocol !== "http:" && url.protocol !== "https:") {
		return `${String(name)} must be an http:// or https:// URL on loopback.`;
	}
	if (url.username || url.password) {
		return `${String(name)} must not carry credentials in the URL.`;
	}
	if (!isLoopbackHost(url.hostname)) {
		return `${String(name)} points at ${url.hostname}, which is not loopback: the local backend only talks to 127.0.0.0/8, ::1 or localhost.`;
	}
	return url;
}

/** The local backend's settings, or the sentence explaining why the mode refuses to run. */
export function localConfig(env: AppEnv, requestUrl: URL): LocalConfig | { error: string } {
	if (!isLoopbackHost(requestUrl.hostname)) {
		return {
			error:
				"MOLT_LOCAL_BACKEND=1 is for the local run only and this request did not arrive on a loopback host: unset MOLT_LOCAL_BACKEND in any deployed Worker.",
		};
	}
	const gateway = loopbackUrl(env, "LOCAL_GATEWAY_URL");
	if (typeof gateway === "string") return { error: gateway };
	const control = loopbackUrl(env, "LOCAL_CONTROL_URL");
	if (typeof control === "string") return { error: control };
	const cdp = loopbackUrl(env, "LOCAL_CDP_URL");
	if (typeof cdp === "string") return { error: cdp };
	const admin = adminTokenOf(env);
	if ("error" in admin) return admin;
	return { gateway, control, cdp, ...admin };
}

function adminTokenOf(env: AppEnv): LocalAdmin | { error: string } {
	const adminToken = setting(env, "LOCAL_ADMIN_TOKEN");
	if (!adminToken || adminToken.length < 16) {
		return {
			error:
				"LOCAL_ADMIN_TOKEN is not set or shorter than 16 characters: `make dev` generates one (.cache/local/admin-token).",
		};
	}
	return { adminToken };
}

/**
 * The production path run locally (`make dev CONTAINERS=1`: the real container, no local
 * backend) still has no Access to sign in with, so LOCAL_ADMIN_TOKEN alone takes its place,
 * under the same rule as the local backend: loopback requests only. Undefined when the token is
 * not set, which is every deployed Worker (the policy pack refuses any LOCAL_* binding).
 */
export function localAdminConfig(
	env: AppEnv,
	requestUrl: URL,
): LocalAdmin | { error: string } | undefined {
	if (env.LOCAL_ADMIN_TOKEN === undefined) return undefined;
	if (!isLoopbackHost(requestUrl.hostname)) {
		return {
			error:
				"LOCAL_ADMIN_TOKEN is for the local run only and this request did not arrive on a loopback host: unset LOCAL_ADMIN_TOKEN in any deployed Worker.",
		};
	}
	return adminTokenOf(env);
}

const encoder = new TextEncoder();

/**
 * The cookie holds a value derived from the token rather than the token itself, so the cookie
 * jar never contains the credential a person typed.
 */
export async function sessionCookieValue(adminToken: string): Promise<string> {
	const digest = await crypto.subtle.digest(
		"SHA-256",
		encoder.encode(`moltworker-local-admin-session:${adminToken}`),
	);
	return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function localAdminAuthorized(request: Request, config: LocalAdmin): Promise<boolean> {
	const bearer = bearerToken(request);
	if (bearer !== undefined) return secretEquals(bearer, config.adminToken);
	const cookie = readCookie(request, ADMIN_COOKIE);
	if (cookie !== undefined)
		return secretEquals(cookie, await sessionCookieValue(config.adminToken));
	return false;
}

export function sessionCookieHeader(value: string, requestUrl: URL): string {
	const secure = requestUrl.protocol === "https:" ? "; Secure" : "";
	return `${ADMIN_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200${secure}`;
}
