/**
 * Cloudflare Access in front of the admin paths, checked again inside the Worker so a request that
 * reaches the Worker without passing Access (a misconfigured application, a workers.dev URL) is
 * still refused. Fails closed: no usable keys means 503, never a pass.
 */
import {
	createRemoteJWKSet,
	customFetch,
	errors,
	type JWTPayload,
	type JWTVerifyGetKey,
	jwtVerify,
} from "jose";
import { readCookie } from "./http";

export const ACCESS_HEADER = "Cf-Access-Jwt-Assertion";
export const ACCESS_COOKIE = "CF_Authorization";
/** Access tokens are around 1 KiB; anything far larger is refused before parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;
export const CLOCK_LEEWAY_S = 30;
/** An unknown key id triggers at most one certs fetch per this many milliseconds. */
export const JWKS_COOLDOWN_MS = 30_000;
export const JWKS_MAX_AGE_MS = 60 * 60_000;
/** After a failed certs fetch, answer 503 at once for this long instead of fetching again. */
export const JWKS_FAILURE_BACKOFF_MS = 5_000;
const JWKS_TIMEOUT_MS = 5_000;
const TEAM_DOMAIN =
	/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

export type FetchFn = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

export type AccessConfig = { teamDomain: string; audience: string };

export type AccessResult =
	| { ok: true; identity: string }
	| { ok: false; status: 401 | 503; message: string; reason: string };

class CertsUnavailable extends Error {}

type KeySet = { getKey: JWTVerifyGetKey; failedAt: number };

// Module scope: one isolate serves many requests, so keys fetched once are reused until they age
// out. Keyed by the fetch function too, so tests that bring their own certs endpoint start clean.
const keySets = new WeakMap<FetchFn, Map<string, KeySet>>();

function keySetFor(teamDomain: string, fetchFn: FetchFn): KeySet {
	let byTeam = keySets.get(fetchFn);
	if (!byTeam) {
		byTeam = new Map();
		keySets.set(fetchFn, byTeam);
	}
	const existing = byTeam.get(teamDomain);
	if (existing) return existing;
	const entry: KeySet = { failedAt: Number.NEGATIVE_INFINITY, getKey: undefined as never };
	const guardedFetch: FetchFn = async (input, init) => {
		if (Date.now() - entry.failedAt < JWKS_FAILURE_BACKOFF_MS) {
			throw new CertsUnavailable("certs endpoint failed moments ago");
		}
		try {
			const response = await fetchFn(input, init);
			if (response.status !== 200) entry.failedAt = Date.now();
			return response;
		} catch (cause) {
			entry.failedAt = Date.now();
			throw new CertsUnavailable("certs endpoint unreachable", { cause });
		}
	};
	entry.getKey = createRemoteJWKSet(new URL(`https://${teamDomain}/cdn-cgi/access/certs`), {
		cooldownDuration: JWKS_COOLDOWN_MS,
		cacheMaxAge: JWKS_MAX_AGE_MS,
		timeoutDuration: JWKS_TIMEOUT_MS,
		[customFetch]: guardedFetch,
	});
	byTeam.set(teamDomain, entry);
	return entry;
}

/** Reads the two Access secrets; the message names the one that is missing or malformed. */
export function accessConfig(
	aud: string | undefined,
	teamDomain: string | undefined,
): AccessConfig | { error: string } {
	if (!aud) {
		return {
			error:
				"The Worker secret CF_ACCESS_AUD is not set: set it to the Access application's AUD (pulumi up does this).",
		};
	}
	if (!teamDomain) {
		return {
			error:
				"The Worker secret CF_ACCESS_TEAM_DOMAIN is not set: set it to <team>.cloudflareaccess.com (pulumi up does this).",
		};
	}
	const domain = teamDomain
		.replace(/^https:\/\//, "")
		.replace(/\/+$/, "")
		.toLowerCase();
	if (!TEAM_DOMAIN.test(domain)) {
		return {
			error:
				"The Worker secret CF_ACCESS_TEAM_DOMAIN is not a host name: set it to <team>.cloudflareaccess.com.",
		};
	}
	return { teamDomain: domain, audience: aud };
}

function presentedToken(request: Request): string | undefined {
	return request.headers.get(ACCESS_HEADER) ?? readCookie(request, ACCESS_COOKIE);
}

function identityOf(payload: JWTPayload): string | undefined {
	// People carry `email`; Access service tokens (CI smoke tests) carry `common_name` instead.
	const email = payload.email;
	if (typeof email === "string" && email.length > 0 && email.length <= 320) return email;
	const commonName = payload.common_name;
	if (typeof commonName === "string" && commonName.length > 0 && commonName.length <= 320) {
		return `service-token:${commonName}`;
	}
	return undefined;
}

const unauthorized = (reason: string, message: string): AccessResult => ({
	ok: false,
	status: 401,
	reason,
	message,
});

export async function verifyAccess(
	request: Request,
	config: AccessConfig,
	fetchFn: FetchFn,
): Promise<AccessResult> {
	const token = presentedToken(request);
	if (!token) {
		return unauthorized(
			"no_token",
			"No Cloudflare Access token on this request: open the page through the Access-protected host name.",
		);
	}
	if (token.length > MAX_TOKEN_BYTES) {
		return unauthorized(
			"token_too_large",
			"The Cloudflare Access token is too large to be genuine.",
		);
	}
	const keySet = keySetFor(config.teamDomain, fetchFn);
	try {
		const { payload } = await jwtVerify(token, keySet.getKey, {
			algorithms: ["RS256"],
			issuer: `https://${config.teamDomain}`,
			audience: config.audience,
			clockTolerance: CLOCK_LEEWAY_S,
			requiredClaims: ["exp"],
		});
		const identity = identityOf(payload);
		if (!identity) {
			return unauthorized(
				"no_identity",
				"The Cloudflare Access token names no user (no email claim): sign in again.",
			);
		}
		return { ok: true, identity };
	} catch (error) {
		if (error instanceof CertsUnavailable || isCertsFailure(error)) {
			return {
				ok: false,
				status: 503,
				reason: "certs_unavailable",
				message:
					"Cloudflare Access signing keys cannot be fetched right now, so no sign-in can be checked: try again in a minute.",
			};
		}
		return unauthorized(
			reasonOf(error),
			"The Cloudflare Access token is not valid for this application: sign in again.",
		);
	}
}

function isCertsFailure(error: unknown): boolean {
	if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return true;
	// jose wraps a non-200 or non-JSON certs answer in a plain JOSEError.
	return error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC";
}

function reasonOf(error: unknown): string {
	if (error instanceof errors.JOSEError) return error.code;
	return "invalid_token";
}
