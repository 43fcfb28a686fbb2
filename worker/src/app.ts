/**
 * The router: which path goes where, and which check stands in front of it. Collaborators that
 * reach outside the Worker (certs fetch, backend, browser) come in through `Deps`, so tests run
 * the real router against doubles.
 */
import { accessConfig, type FetchFn, verifyAccess } from "./access";
import type { Backend, BrowserSource } from "./backend";
import { BrowserRendering } from "./browser-rendering";
import { containerConfigProblem } from "./container-env";
import { type AppEnv, isLocalMode, setting } from "./env";
import { errorResponse, jsonResponse, PAGE_CSP, PAGE_REFERRER_POLICY, wantsHtml } from "./http";
import {
	type LocalAdmin,
	type LocalConfig,
	localAdminAuthorized,
	localAdminConfig,
	localConfig,
} from "./local";
import { LocalBackend, LocalChromium } from "./local-backend";
import { log } from "./log";
import { adminApiRoute } from "./routes/admin";
import { cdpRoute } from "./routes/cdp";
import { debugRoute } from "./routes/debug";
import { gatewayRoute } from "./routes/gateway";
import { loginRoute } from "./routes/login";
import { ContainerBackend, sandboxBrowserSessions } from "./sandbox";

export type Deps = {
	/** Outbound HTTP: the Access certs endpoint and, in the local run, the loopback services. */
	fetch: FetchFn;
	backend?: (env: AppEnv, url: URL, local: LocalConfig | undefined) => Backend;
	browser?: (env: AppEnv, local: LocalConfig | undefined) => BrowserSource;
};

export function defaultBackend(
	deps: Deps,
	env: AppEnv,
	url: URL,
	local: LocalConfig | undefined,
): Backend {
	if (local) return new LocalBackend(local, deps.fetch);
	return new ContainerBackend(env.SANDBOX, url.origin);
}

function defaultBrowser(deps: Deps, env: AppEnv, local: LocalConfig | undefined): BrowserSource {
	if (local) return new LocalChromium(local.cdp, deps.fetch);
	return new BrowserRendering(env.BROWSER, sandboxBrowserSessions(env.SANDBOX));
}

function isAdminPath(pathname: string): boolean {
	return (
		pathname === "/_admin" ||
		pathname.startsWith("/_admin/") ||
		pathname.startsWith("/api/") ||
		pathname === "/debug" ||
		pathname.startsWith("/debug/")
	);
}

type Identity = { ok: true; identity: string } | { ok: false; response: Response };

async function authenticate(
	request: Request,
	env: AppEnv,
	localAdmin: LocalAdmin | undefined,
	deps: Deps,
): Promise<Identity> {
	const url = new URL(request.url);
	if (localAdmin) {
		if (await localAdminAuthorized(request, localAdmin)) {
			return { ok: true, identity: "local-admin" };
		}
		if (wantsHtml(request) && url.pathname.startsWith("/_admin")) {
			return {
				ok: false,
				response: new Response(null, { status: 303, headers: { Location: "/_admin/login" } }),
			};
		}
		return {
			ok: false,
			response: errorResponse(
				401,
				"Sign in at /_admin/login or send Authorization: Bearer <LOCAL_ADMIN_TOKEN>.",
			),
		};
	}
	const config = accessConfig(setting(env, "CF_ACCESS_AUD"), setting(env, "CF_ACCESS_TEAM_DOMAIN"));
	if ("error" in config) {
		log("error", "access not configured", { route: "admin" });
		return { ok: false, response: errorResponse(503, config.error) };
	}
	const result = await verifyAccess(request, config, deps.fetch);
	if (result.ok) return result;
	log("warn", "access refused", { route: "admin", status: result.status, reason: result.reason });
	return { ok: false, response: errorResponse(result.status, result.message) };
}

async function serveAdminAsset(request: Request, env: AppEnv): Promise<Response> {
	if (request.method !== "GET" && request.method !== "HEAD") {
		return errorResponse(405, "The admin UI is read with GET.", { Allow: "GET, HEAD" });
	}
	const url = new URL(request.url);
	if (url.pathname === "/_admin") return Response.redirect(`${url.origin}/_admin/`, 308);
	const asset = await env.ASSETS.fetch(request);
	const response = new Response(asset.body, asset);
	response.headers.set("Content-Security-Policy", PAGE_CSP);
	response.headers.set("X-Frame-Options", "DENY");
	response.headers.set("X-Content-Type-Options", "nosniff");
	response.headers.set("Referrer-Policy", PAGE_REFERRER_POLICY);
	response.headers.set("Cache-Control", "no-store");
	return response;
}

async function route(request: Request, env: AppEnv, deps: Deps): Promise<Response> {
	const url = new URL(request.url);
	let local: LocalConfig | undefined;
	let localAdmin: LocalAdmin | undefined;
	if (isLocalMode(env)) {
		const config = localConfig(env, url);
		if ("error" in config) {
			log("error", "local backend refused", {
				route: "local",
				reason: "not_loopback_or_incomplete",
			});
			return errorResponse(500, config.error);
		}
		local = config;
		localAdmin = config;
	} else {
		const admin = localAdminConfig(env, url);
		if (admin && "error" in admin) {
			log("error", "local sign-in refused", { route: "local", reason: "not_loopback_or_short" });
			return errorResponse(500, admin.error);
		}
		localAdmin = admin;
	}
	if (url.pathname === "/healthz") {
		return jsonResponse({ ok: true });
	}
	const backend = () =>
		(deps.backend ?? ((e, u, l) => defaultBackend(deps, e, u, l)))(env, url, local);
	if (url.pathname === "/cdp" || url.pathname.startsWith("/cdp/")) {
		const browser = () => (deps.browser ?? ((e, l) => defaultBrowser(deps, e, l)))(env, local);
		return cdpRoute(request, setting(env, "MOLT_CDP_SECRET"), browser);
	}
	if (localAdmin && url.pathname === "/_admin/login") return loginRoute(request, localAdmin);
	if (isAdminPath(url.pathname)) {
		const auth = await authenticate(request, env, localAdmin, deps);
		if (!auth.ok) return auth.response;
		if (url.pathname.startsWith("/api/admin/")) {
			return adminApiRoute(request, auth.identity, backend(), setting(env, "MOLT_CONTROL_SECRET"));
		}
		if (url.pathname.startsWith("/api/")) return errorResponse(404, "Unknown API path.");
		if (url.pathname === "/debug" || url.pathname.startsWith("/debug/")) {
			return debugRoute(request, env, auth.identity, backend());
		}
		return serveAdminAsset(request, env);
	}
	if (!local) {
		const problem = containerConfigProblem(env);
		if (problem) {
			log("error", "container not configured", { route: "gateway" });
			return errorResponse(503, problem);
		}
	}
	return gatewayRoute(request, backend());
}

export function createHandler(deps: Deps): (request: Request, env: AppEnv) => Promise<Response> {
	return async (request, env) => {
		const started = Date.now();
		let response: Response;
		try {
			response = await route(request, env, deps);
		} catch (error) {
			log("error", "unhandled error", { reason: error instanceof Error ? error.name : "unknown" });
			response = errorResponse(
				500,
				"The Worker hit an unexpected error: retry, and check the Worker logs if it persists.",
			);
		}
		log("info", "request", {
			method: request.method,
			path: new URL(request.url).pathname,
			status: response.status,
			ms: Date.now() - started,
		});
		return response;
	};
}
