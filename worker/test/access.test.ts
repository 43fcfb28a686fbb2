import { SignJWT } from "jose";
import { describe, expect, it, vi } from "vitest";
import { JWKS_COOLDOWN_MS, MAX_TOKEN_BYTES } from "../src/access";
import {
	AUD,
	accessKit,
	certsEndpoint,
	deployedEnv,
	FakeBackend,
	handlerWith,
	ORIGIN,
	TEAM,
} from "./helpers";
import { extraSecrets } from "./setup";

const kit = await accessKit();

function setup() {
	const certs = certsEndpoint(kit.jwks);
	const backend = new FakeBackend();
	const handle = handlerWith({ fetch: certs.fetchFn, backend: () => backend });
	return { certs, backend, handle };
}

function adminRequest(token?: string, init: RequestInit = {}, path = "/api/admin/status"): Request {
	const headers = new Headers(init.headers);
	if (token !== undefined) {
		headers.set("Cf-Access-Jwt-Assertion", token);
		extraSecrets.push(token);
	}
	return new Request(`${ORIGIN}${path}`, { ...init, headers });
}

function b64url(text: string): string {
	return btoa(text).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

async function expectRefused(response: Response, backend: FakeBackend, status = 401) {
	expect(response.status).toBe(status);
	const body = (await response.json()) as { error: string };
	expect(body.error).toMatch(/\S/);
	expect(backend.controlCalls).toHaveLength(0);
	expect(backend.gatewayRequests).toHaveLength(0);
}

describe("Access JWT", () => {
	it("accepts a token signed with the current key and passes the identity on", async () => {
		const { backend, handle } = setup();
		const response = await handle(adminRequest(await kit.sign()), deployedEnv());
		expect(response.status).toBe(200);
		expect(backend.controlCalls).toHaveLength(1);
	});

	it("accepts a token signed with the previous key (two keys in the set)", async () => {
		const { backend, handle } = setup();
		const response = await handle(adminRequest(await kit.signWithPrevious()), deployedEnv());
		expect(response.status).toBe(200);
		expect(backend.controlCalls).toHaveLength(1);
	});

	it("accepts the CF_Authorization cookie when the header is absent", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign();
		extraSecrets.push(token);
		const response = await handle(
			new Request(`${ORIGIN}/api/admin/status`, {
				headers: { Cookie: `other=1; CF_Authorization=${token}` },
			}),
			deployedEnv(),
		);
		expect(response.status).toBe(200);
		expect(backend.controlCalls).toHaveLength(1);
	});

	it("accepts an Access service token and names it in the control JWT", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({ email: undefined, common_name: "ci-smoke.access" });
		const response = await handle(adminRequest(token), deployedEnv());
		expect(response.status).toBe(200);
		const control = backend.controlCalls[0]?.token ?? "";
		extraSecrets.push(control);
		const payload = JSON.parse(
			atob(control.split(".")[1]?.replace(/-/g, "+").replace(/_/g, "/") ?? ""),
		);
		expect(payload.sub).toBe("service-token:ci-smoke.access");
	});

	it("refuses a request without a token", async () => {
		const { backend, handle } = setup();
		await expectRefused(await handle(adminRequest(), deployedEnv()), backend);
	});

	it("refuses a token given in the query string", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign();
		extraSecrets.push(token);
		const request = new Request(
			`${ORIGIN}/api/admin/status?token=${token}&CF_Authorization=${token}`,
		);
		await expectRefused(await handle(request, deployedEnv()), backend);
	});

	it("refuses alg none", async () => {
		const { backend, handle } = setup();
		const now = Math.floor(Date.now() / 1000);
		const header = b64url(JSON.stringify({ alg: "none", kid: "kid-current" }));
		const payload = b64url(
			JSON.stringify({
				email: "admin@example.com",
				iss: `https://${TEAM}`,
				aud: AUD,
				exp: now + 300,
			}),
		);
		await expectRefused(
			await handle(adminRequest(`${header}.${payload}.`), deployedEnv()),
			backend,
		);
	});

	it("refuses HS256 signed with the public key material", async () => {
		const { backend, handle } = setup();
		const now = Math.floor(Date.now() / 1000);
		const token = await new SignJWT({ email: "admin@example.com" })
			.setProtectedHeader({ alg: "HS256", kid: "kid-current" })
			.setIssuer(`https://${TEAM}`)
			.setAudience(AUD)
			.setExpirationTime(now + 300)
			.sign(new TextEncoder().encode(kit.publicPem));
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses an expired token (beyond the leeway)", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({}, { expiresIn: -120 });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses a token not yet valid (beyond the leeway)", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({}, { notBefore: Math.floor(Date.now() / 1000) + 600 });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses a token without exp", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({}, { expiresIn: null });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses the wrong audience", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({}, { audience: "another-application" });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses the wrong issuer", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({}, { issuer: "https://attacker.cloudflareaccess.com" });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses a token without an identity claim", async () => {
		const { backend, handle } = setup();
		const token = await kit.sign({ email: undefined });
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
	});

	it("refuses malformed segments", async () => {
		const { backend, handle } = setup();
		for (const token of [
			"abc",
			"a.b",
			"a.b.c.d",
			"!!!.###.$$$",
			`${b64url("{")}.${b64url("{}")}.sig`,
		]) {
			await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
		}
	});

	it("refuses an oversized token before parsing it", async () => {
		const { certs, backend, handle } = setup();
		const token = `${"a".repeat(MAX_TOKEN_BYTES)}.b.c`;
		await expectRefused(await handle(adminRequest(token), deployedEnv()), backend);
		expect(certs.state.fetches).toBe(0);
	});

	it("refreshes keys for unknown key ids at most once per cooldown", async () => {
		const { certs, backend, handle } = setup();
		const env = deployedEnv();
		const start = Date.now();
		const clock = vi.spyOn(Date, "now").mockReturnValue(start);
		for (let i = 0; i < 20; i++) {
			const token = await kit.sign({}, { kid: `unknown-${i}` });
			await expectRefused(await handle(adminRequest(token), env), backend);
		}
		// The first request loads the set; the unknown kids inside the cooldown fetch nothing more.
		expect(certs.state.fetches).toBe(1);
		clock.mockReturnValue(start + JWKS_COOLDOWN_MS + 1_000);
		for (let i = 0; i < 5; i++) {
			const token = await kit.sign({}, { kid: `unknown-late-${i}` });
			await expectRefused(await handle(adminRequest(token), env), backend);
		}
		expect(certs.state.fetches).toBe(2);
		// A known key still verifies from the cache without another fetch.
		expect((await handle(adminRequest(await kit.sign()), env)).status).toBe(200);
		expect(certs.state.fetches).toBe(2);
	});

	it("answers 503 during a certs outage with no cached key, and does not fetch in a loop", async () => {
		const { certs, backend, handle } = setup();
		certs.state.down = true;
		for (let i = 0; i < 5; i++) {
			await expectRefused(
				await handle(adminRequest(await kit.sign()), deployedEnv()),
				backend,
				503,
			);
		}
		expect(certs.state.fetches).toBe(1);
	});

	it("keeps verifying with cached keys while the certs endpoint is down", async () => {
		const { certs, handle } = setup();
		expect((await handle(adminRequest(await kit.sign()), deployedEnv())).status).toBe(200);
		certs.state.down = true;
		expect((await handle(adminRequest(await kit.sign()), deployedEnv())).status).toBe(200);
		expect(certs.state.fetches).toBe(1);
	});

	it("answers 503 naming CF_ACCESS_AUD when it is missing", async () => {
		const { backend, handle } = setup();
		const response = await handle(
			adminRequest(await kit.sign()),
			deployedEnv({ CF_ACCESS_AUD: undefined }),
		);
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("CF_ACCESS_AUD");
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("answers 503 naming CF_ACCESS_TEAM_DOMAIN when it is missing", async () => {
		const { backend, handle } = setup();
		const response = await handle(
			adminRequest(await kit.sign()),
			deployedEnv({ CF_ACCESS_TEAM_DOMAIN: " " }),
		);
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("CF_ACCESS_TEAM_DOMAIN");
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("guards the admin UI and debug paths too", async () => {
		const { backend, handle } = setup();
		for (const path of ["/_admin/", "/_admin/admin.js", "/debug/config", "/api/other"]) {
			await expectRefused(
				await handle(adminRequest(undefined, {}, path), deployedEnv({ DEBUG_ROUTES: "true" })),
				backend,
			);
		}
	});
});
