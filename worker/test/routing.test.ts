import { exports } from "cloudflare:workers";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { CONTROL_AUDIENCE, CONTROL_ISSUER } from "../src/control";
import {
	accessKit,
	certsEndpoint,
	deployedEnv,
	FakeBackend,
	handlerWith,
	ORIGIN,
	SECRETS,
} from "./helpers";
import { extraSecrets } from "./setup";

const kit = await accessKit();

async function signedIn(path: string, init: RequestInit = {}, email = "admin@example.com") {
	const token = await kit.sign({ email });
	extraSecrets.push(token);
	const headers = new Headers(init.headers);
	headers.set("Cf-Access-Jwt-Assertion", token);
	return new Request(`${ORIGIN}${path}`, { ...init, headers });
}

function setup() {
	const certs = certsEndpoint(kit.jwks);
	const backend = new FakeBackend();
	const handle = handlerWith({ fetch: certs.fetchFn, backend: () => backend });
	return { backend, handle, certs };
}

const post = { method: "POST", headers: { Origin: ORIGIN } };

describe("public routes", () => {
	it("answers /healthz through the real entrypoint without secrets", async () => {
		const response = await exports.default.fetch("https://example.com/healthz");
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ ok: true });
	});

	it("does not touch the backend for /healthz", async () => {
		const { backend, handle } = setup();
		let prepared = 0;
		backend.prepare = async () => {
			prepared++;
			return { ready: true };
		};
		expect((await handle(new Request(`${ORIGIN}/healthz`), deployedEnv())).status).toBe(200);
		expect(prepared).toBe(0);
	});
});

describe("gateway", () => {
	it("proxies HTTP to the gateway without the admin's Access credentials", async () => {
		const { backend, handle } = setup();
		const request = new Request(`${ORIGIN}/chat?x=1`, {
			headers: {
				"Cf-Access-Jwt-Assertion": "should-not-pass",
				Cookie: "CF_Authorization=abc; theme=dark; molt_admin=def",
			},
		});
		const response = await handle(request, deployedEnv());
		expect(response.status).toBe(200);
		expect(await response.text()).toBe("gateway says hi");
		// The fake records what the router handed it; the backend strips credentials itself, so
		// the stripping is asserted on the real backends in local.test.ts.
		expect(backend.gatewayRequests).toHaveLength(1);
		expect(new URL(backend.gatewayRequests[0]?.url ?? "").search).toBe("?x=1");
	});

	it("shows browsers a loading page with the boot phase while the sandbox starts", async () => {
		const { backend, handle } = setup();
		backend.boot = { ready: false, phase: "restoring" };
		const response = await handle(
			new Request(`${ORIGIN}/`, { headers: { Accept: "text/html" } }),
			deployedEnv(),
		);
		expect(response.status).toBe(503);
		expect(response.headers.get("Content-Type")).toContain("text/html");
		expect(response.headers.get("Retry-After")).toBe("3");
		const csp = response.headers.get("Content-Security-Policy") ?? "";
		expect(csp).toContain("default-src 'none'");
		expect(csp).not.toContain("unsafe-inline");
		const html = await response.text();
		expect(html).toContain("restoring");
		expect(html).not.toContain("<script");
		// The page's one style block is allowed by its hash, so the CSP needs no unsafe-inline.
		const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? "";
		const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(style));
		const hash = btoa(String.fromCharCode(...new Uint8Array(digest)));
		expect(csp).toContain(`style-src 'sha256-${hash}'`);
		expect(backend.gatewayRequests).toHaveLength(0);
	});

	it("gives API callers a 503 JSON while the sandbox starts", async () => {
		const { backend, handle } = setup();
		backend.boot = { ready: false, phase: "starting" };
		const response = await handle(
			new Request(`${ORIGIN}/api-ish`, { headers: { Accept: "application/json" } }),
			deployedEnv(),
		);
		expect(response.status).toBe(503);
		const body = (await response.json()) as { error: string };
		expect(body.error).toContain("starting");
	});

	it("refuses to start the container when a required setting is missing, naming it", async () => {
		const { backend, handle } = setup();
		const response = await handle(
			new Request(`${ORIGIN}/`),
			deployedEnv({ MOLT_SNAPSHOT_KEY: undefined }),
		);
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("MOLT_SNAPSHOT_KEY");
		expect(backend.gatewayRequests).toHaveLength(0);
	});

	it("refuses an invalid SLEEP_AFTER with the fix", async () => {
		const { handle } = setup();
		const response = await handle(new Request(`${ORIGIN}/`), deployedEnv({ SLEEP_AFTER: "soon" }));
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("SLEEP_AFTER");
	});

	it("never puts the gateway token in the upstream URL", async () => {
		const { backend, handle } = setup();
		await handle(new Request(`${ORIGIN}/`), deployedEnv());
		expect(backend.gatewayRequests[0]?.url).not.toContain(SECRETS.OPENCLAW_GATEWAY_TOKEN);
	});
});

describe("admin API", () => {
	it("calls the control API with a fresh, correctly scoped HS256 token", async () => {
		const { backend, handle } = setup();
		backend.controlAnswer = () => Response.json({ phase: "ready", version: "1.2.3" });
		const response = await handle(
			await signedIn("/api/admin/status", {}, "alice@example.com"),
			deployedEnv(),
		);
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ phase: "ready", version: "1.2.3" });
		const call = backend.controlCalls[0];
		expect(call?.method).toBe("GET");
		expect(call?.path).toBe("/v1/status");
		extraSecrets.push(call?.token ?? "");
		const { payload, protectedHeader } = await jwtVerify(
			call?.token ?? "",
			new TextEncoder().encode(SECRETS.MOLT_CONTROL_SECRET),
			{ algorithms: ["HS256"], audience: CONTROL_AUDIENCE, issuer: CONTROL_ISSUER },
		);
		expect(protectedHeader.alg).toBe("HS256");
		expect(payload.sub).toBe("alice@example.com");
		expect(payload.aud).toBe("moltworker-control");
		expect(payload.iss).toBe("moltworker-worker");
		expect(typeof payload.iat).toBe("number");
		expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBeGreaterThan(0);
		expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBeLessThanOrEqual(300);
	});

	it("mints a different token for every call", async () => {
		const { backend, handle } = setup();
		await handle(await signedIn("/api/admin/status"), deployedEnv());
		await handle(await signedIn("/api/admin/status"), deployedEnv());
		extraSecrets.push(...backend.controlCalls.map((call) => call.token));
		expect(backend.controlCalls[0]?.token).not.toBe(backend.controlCalls[1]?.token);
	});

	it.each([
		["/api/admin/snapshots", "GET", "/v1/snapshots"],
		["/api/admin/snapshots/now", "POST", "/v1/snapshots"],
		["/api/admin/gateway/restart", "POST", "/v1/gateway/restart"],
		["/api/admin/devices", "GET", "/v1/devices"],
		[
			"/api/admin/devices/pending/0b7e2c4a-91f3-4d1e-8a55-3c9f7e6d2b10/approve",
			"POST",
			"/v1/devices/pending/0b7e2c4a-91f3-4d1e-8a55-3c9f7e6d2b10/approve",
		],
		["/api/admin/devices/pending/req_42/reject", "POST", "/v1/devices/pending/req_42/reject"],
		["/api/admin/devices/3f9a0c1b2d4e/revoke", "POST", "/v1/devices/3f9a0c1b2d4e/revoke"],
	])("maps %s (%s) to %s", async (path, method, controlPath) => {
		const { backend, handle } = setup();
		const init = method === "POST" ? post : {};
		const response = await handle(await signedIn(path, init), deployedEnv());
		expect(response.status).toBe(200);
		expect(backend.controlCalls.map((call) => [call.method, call.path])).toEqual([
			[method, controlPath],
		]);
	});

	it.each([
		"/api/admin/devices/pending/..%2F..%2Fv1%2Fgateway%2Frestart/approve",
		"/api/admin/devices/pending/a%20b/approve",
		`/api/admin/devices/${"x".repeat(129)}/revoke`,
		"/api/admin/devices/pending/a.b/approve",
		"/api/admin/devices/-leading-dash/revoke",
		"/api/admin/devices/pending/_x/reject",
	])("refuses a malformed id in %s", async (path) => {
		const { backend, handle } = setup();
		const response = await handle(await signedIn(path, post), deployedEnv());
		expect(response.status).toBe(400);
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("requires POST for mutating calls", async () => {
		const { backend, handle } = setup();
		const response = await handle(await signedIn("/api/admin/gateway/restart"), deployedEnv());
		expect(response.status).toBe(405);
		expect(response.headers.get("Allow")).toBe("POST");
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("refuses a cross-origin or origin-less POST (CSRF)", async () => {
		const { backend, handle } = setup();
		const cases: Record<string, string>[] = [
			{ Origin: "https://evil.example" },
			{},
			{ Origin: "null" },
		];
		for (const headers of cases) {
			const response = await handle(
				await signedIn("/api/admin/snapshots/now", { method: "POST", headers }),
				deployedEnv(),
			);
			expect(response.status).toBe(403);
		}
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("passes the runtime's error on as a clear message with its status", async () => {
		const { backend, handle } = setup();
		backend.controlAnswer = () =>
			Response.json(
				{ error: "A snapshot is already running: wait for it to finish." },
				{ status: 409 },
			);
		const response = await handle(await signedIn("/api/admin/snapshots/now", post), deployedEnv());
		expect(response.status).toBe(409);
		expect(((await response.json()) as { error: string }).error).toBe(
			"The sandbox runtime says: A snapshot is already running: wait for it to finish.",
		);
	});

	it("explains a control-secret mismatch when the runtime answers 401", async () => {
		const { backend, handle } = setup();
		backend.controlAnswer = () => Response.json({ error: "unauthorized" }, { status: 401 });
		const response = await handle(await signedIn("/api/admin/status"), deployedEnv());
		expect(response.status).toBe(502);
		expect(((await response.json()) as { error: string }).error).toContain("MOLT_CONTROL_SECRET");
	});

	it("reports a non-JSON runtime answer as a 502", async () => {
		const { backend, handle } = setup();
		backend.controlAnswer = () => new Response("<html>oops</html>", { status: 500 });
		const response = await handle(await signedIn("/api/admin/status"), deployedEnv());
		expect(response.status).toBe(502);
	});

	it("answers 503 with the phase while the sandbox boots", async () => {
		const { backend, handle } = setup();
		backend.boot = { ready: false, phase: "restoring" };
		const response = await handle(await signedIn("/api/admin/devices"), deployedEnv());
		expect(response.status).toBe(503);
		expect(((await response.json()) as { phase: string }).phase).toBe("restoring");
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("refuses to mint with a short control secret", async () => {
		const { backend, handle } = setup();
		const response = await handle(
			await signedIn("/api/admin/status"),
			deployedEnv({ MOLT_CONTROL_SECRET: "short" }),
		);
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("MOLT_CONTROL_SECRET");
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("answers 404 for unknown admin paths", async () => {
		const { handle } = setup();
		expect((await handle(await signedIn("/api/admin/nope"), deployedEnv())).status).toBe(404);
	});
});

describe("admin UI and debug routes", () => {
	it("serves the admin page with a strict CSP after Access", async () => {
		const { handle } = setup();
		const response = await handle(await signedIn("/_admin/"), deployedEnv());
		expect(response.status).toBe(200);
		const csp = response.headers.get("Content-Security-Policy") ?? "";
		expect(csp).toContain("script-src 'self'");
		expect(csp).not.toContain("unsafe-inline");
		// Under no-referrer a browser's form POST carries `Origin: null` and fails the CSRF check.
		expect(response.headers.get("Referrer-Policy")).toBe("same-origin");
		const html = await response.text();
		expect(html).toContain('id="pending-list"');
		expect(html).toContain('src="/_admin/admin.js"');
		expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
	});

	it("redirects /_admin to /_admin/ once signed in", async () => {
		const { handle } = setup();
		const response = await handle(await signedIn("/_admin"), deployedEnv());
		expect(response.status).toBe(308);
		expect(response.headers.get("Location")).toBe(`${ORIGIN}/_admin/`);
	});

	it("serves the admin script", async () => {
		const { handle } = setup();
		const response = await handle(await signedIn("/_admin/admin.js"), deployedEnv());
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Type")).toContain("javascript");
	});

	it("keeps /debug off unless DEBUG_ROUTES is true", async () => {
		const { handle } = setup();
		expect((await handle(await signedIn("/debug/config"), deployedEnv())).status).toBe(404);
		const on = await handle(await signedIn("/debug/config"), deployedEnv({ DEBUG_ROUTES: "true" }));
		expect(on.status).toBe(200);
		const text = await on.text();
		expect(text).toContain('"MOLT_CONTROL_SECRET":true');
		for (const value of Object.values(SECRETS)) expect(text).not.toContain(value);
	});

	it("keeps /debug read-only and validates its inputs", async () => {
		const { backend, handle } = setup();
		const env = deployedEnv({ DEBUG_ROUTES: "true" });
		expect((await handle(await signedIn("/debug/config", post), env)).status).toBe(405);
		expect((await handle(await signedIn("/debug/logs?lines=5000"), env)).status).toBe(400);
		expect((await handle(await signedIn("/debug/logs?lines=abc"), env)).status).toBe(400);
		expect(backend.controlCalls).toHaveLength(0);
		expect((await handle(await signedIn("/debug/logs?lines=50"), env)).status).toBe(200);
		expect(backend.controlCalls[0]?.path).toBe("/v1/logs?lines=50");
	});
});
