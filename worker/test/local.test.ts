import { describe, expect, it } from "vitest";
import type { FetchFn } from "../src/access";
import type { AppEnv } from "../src/env";
import { isLoopbackHost } from "../src/local";
import { LocalChromium } from "../src/local-backend";
import { deployedEnv, handlerWith, SECRETS } from "./helpers";
import { extraSecrets } from "./setup";

const LOCAL = "http://127.0.0.1:8787";

function localEnv(overrides: Partial<AppEnv> = {}): AppEnv {
	return deployedEnv({
		MOLT_LOCAL_BACKEND: "1",
		LOCAL_GATEWAY_URL: "http://127.0.0.1:18789",
		LOCAL_CONTROL_URL: "http://127.0.0.1:8788",
		LOCAL_CDP_URL: "http://localhost:9223",
		LOCAL_ADMIN_TOKEN: SECRETS.LOCAL_ADMIN_TOKEN,
		CF_ACCESS_AUD: undefined,
		CF_ACCESS_TEAM_DOMAIN: undefined,
		...overrides,
	});
}

/** Loopback services as the real LocalBackend sees them through its fetch. */
function loopback(phase = "ready") {
	const seen: Request[] = [];
	const fetchFn: FetchFn = async (input, init) => {
		const request = new Request(input, init);
		seen.push(request);
		const url = new URL(request.url);
		if (url.port === "8788" && url.pathname === "/healthz")
			return Response.json({ ok: phase === "ready", phase });
		if (url.port === "8788") return Response.json({ phase, path: url.pathname });
		if (url.port === "18789" && request.headers.get("Upgrade") === "websocket") {
			const pair = new WebSocketPair();
			pair[1].accept();
			return new Response(null, { status: 101, webSocket: pair[0] });
		}
		if (url.port === "18789") return new Response("local gateway");
		return new Response("nothing here", { status: 404 });
	};
	return { seen, handle: handlerWith({ fetch: fetchFn }) };
}

describe("loopback rule", () => {
	it.each([
		["localhost", true],
		["127.0.0.1", true],
		["127.255.255.254", true],
		["[::1]", true],
		["128.0.0.1", false],
		["10.0.0.5", false],
		["127.0.0.1.evil.example", false],
		["127.0.0", false],
		["127.0.0.256", false],
		["0.0.0.0", false],
		["[::ffff:7f00:1]", false],
		["example.com", false],
	])("%s is loopback: %s", (host, expected) => {
		expect(isLoopbackHost(host)).toBe(expected);
	});

	it("refuses every request, /healthz included, when the request's host is not loopback", async () => {
		const { handle, seen } = loopback();
		for (const path of ["/healthz", "/", "/_admin/", "/cdp"]) {
			const response = await handle(new Request(`https://agent.example.com${path}`), localEnv());
			expect(response.status).toBe(500);
			expect(((await response.json()) as { error: string }).error).toContain("MOLT_LOCAL_BACKEND");
		}
		expect(seen).toHaveLength(0);
	});

	it.each([
		["LOCAL_GATEWAY_URL", "http://10.0.0.5:18789"],
		["LOCAL_CONTROL_URL", "http://127.0.0.1.evil.example:8788"],
		["LOCAL_CDP_URL", "http://192.168.1.2:9222"],
		["LOCAL_GATEWAY_URL", "ftp://127.0.0.1/"],
		["LOCAL_CONTROL_URL", "http://user:pass@127.0.0.1:8788"],
		["LOCAL_CDP_URL", "not a url"],
		["LOCAL_GATEWAY_URL", undefined],
	])("refuses %s=%s with a message naming it", async (name, value) => {
		const { handle, seen } = loopback();
		const response = await handle(new Request(`${LOCAL}/`), localEnv({ [name]: value }));
		expect(response.status).toBe(500);
		expect(((await response.json()) as { error: string }).error).toContain(name);
		expect(seen).toHaveLength(0);
	});

	it("refuses a missing or short LOCAL_ADMIN_TOKEN", async () => {
		const { handle } = loopback();
		const response = await handle(
			new Request(`${LOCAL}/`),
			localEnv({ LOCAL_ADMIN_TOKEN: "short" }),
		);
		expect(response.status).toBe(500);
		expect(((await response.json()) as { error: string }).error).toContain("LOCAL_ADMIN_TOKEN");
	});

	it("accepts IPv6 loopback", async () => {
		const { handle } = loopback();
		const response = await handle(
			new Request("http://[::1]:8787/healthz"),
			localEnv({ LOCAL_GATEWAY_URL: "http://[::1]:18789" }),
		);
		expect(response.status).toBe(200);
	});
});

describe("local backend", () => {
	it("proxies the gateway to loopback without admin credentials or client-address headers", async () => {
		const { handle, seen } = loopback();
		const response = await handle(
			new Request(`${LOCAL}/ui/index.html?lang=en`, {
				headers: {
					Cookie: `molt_admin=abc; CF_Authorization=def; theme=dark`,
					"Cf-Access-Jwt-Assertion": "x",
					"X-Forwarded-For": "203.0.113.9",
					Forwarded: "for=203.0.113.9",
					"X-Real-IP": "203.0.113.9",
				},
			}),
			localEnv(),
		);
		expect(response.status).toBe(200);
		expect(await response.text()).toBe("local gateway");
		const upstream = seen.find((request) => new URL(request.url).port === "18789");
		expect(upstream?.url).toBe("http://127.0.0.1:18789/ui/index.html?lang=en");
		expect(upstream?.headers.get("Cookie")).toBe("theme=dark");
		expect(upstream?.headers.get("Cf-Access-Jwt-Assertion")).toBeNull();
		for (const name of ["X-Forwarded-For", "Forwarded", "X-Real-IP"]) {
			expect(upstream?.headers.get(name), name).toBeNull();
		}
	});

	it("shows the runtime's boot phase while it restores", async () => {
		const { handle } = loopback("restoring");
		const response = await handle(
			new Request(`${LOCAL}/`, { headers: { Accept: "text/html" } }),
			localEnv(),
		);
		expect(response.status).toBe(503);
		expect(await response.text()).toContain("restoring");
	});

	it("opens the gateway WebSocket on loopback", async () => {
		const { handle, seen } = loopback();
		const response = await handle(
			new Request(`${LOCAL}/`, { headers: { Upgrade: "websocket" } }),
			localEnv(),
		);
		expect(response.status).toBe(101);
		response.webSocket?.accept();
		await new Promise((resolve) => setTimeout(resolve, 5));
		expect(seen.some((request) => request.headers.get("Upgrade") === "websocket")).toBe(true);
	});

	it("accepts the admin token as a bearer and calls the loopback control API", async () => {
		const { handle, seen } = loopback();
		const response = await handle(
			new Request(`${LOCAL}/api/admin/status`, {
				headers: { Authorization: `Bearer ${SECRETS.LOCAL_ADMIN_TOKEN}` },
			}),
			localEnv(),
		);
		expect(response.status).toBe(200);
		const control = seen.find((request) => new URL(request.url).pathname === "/v1/status");
		expect(control?.url).toBe("http://127.0.0.1:8788/v1/status");
		const authorization = control?.headers.get("Authorization") ?? "";
		extraSecrets.push(authorization.slice("Bearer ".length));
		expect(authorization).toMatch(/^Bearer ey/);
	});

	it.each([
		["a wrong token", "Bearer wrong-token-of-some-length"],
		["no token", undefined],
	])("refuses %s", async (_label, authorization) => {
		const { handle, seen } = loopback();
		const headers: Record<string, string> = authorization ? { Authorization: authorization } : {};
		const response = await handle(
			new Request(`${LOCAL}/api/admin/status`, { headers }),
			localEnv(),
		);
		expect(response.status).toBe(401);
		expect(seen).toHaveLength(0);
	});

	it("sends browsers without a session to the sign-in form", async () => {
		const { handle } = loopback();
		const response = await handle(
			new Request(`${LOCAL}/_admin/`, { headers: { Accept: "text/html" } }),
			localEnv(),
		);
		expect(response.status).toBe(303);
		expect(response.headers.get("Location")).toBe("/_admin/login");
	});

	it("signs in with the form and then serves the admin page on the cookie", async () => {
		const { handle } = loopback();
		const form = await handle(new Request(`${LOCAL}/_admin/login`), localEnv());
		expect(form.status).toBe(200);
		expect(form.headers.get("Referrer-Policy")).toBe("same-origin");
		expect(await form.text()).toContain('name="token"');
		const login = await handle(
			new Request(`${LOCAL}/_admin/login`, {
				method: "POST",
				headers: { Origin: LOCAL, "Content-Type": "application/x-www-form-urlencoded" },
				body: new URLSearchParams({ token: SECRETS.LOCAL_ADMIN_TOKEN }).toString(),
			}),
			localEnv(),
		);
		expect(login.status).toBe(303);
		const setCookie = login.headers.get("Set-Cookie") ?? "";
		expect(setCookie).toContain("HttpOnly");
		expect(setCookie).toContain("SameSite=Strict");
		expect(setCookie).not.toContain(SECRETS.LOCAL_ADMIN_TOKEN);
		const cookie = setCookie.split(";")[0] ?? "";
		const page = await handle(
			new Request(`${LOCAL}/_admin/`, { headers: { Cookie: cookie } }),
			localEnv(),
		);
		expect(page.status).toBe(200);
		expect(await page.text()).toContain("Agent admin");
		const forged = await handle(
			new Request(`${LOCAL}/_admin/`, {
				headers: { Cookie: "molt_admin=0000", Accept: "application/json" },
			}),
			localEnv(),
		);
		expect(forged.status).toBe(401);
	});

	it("refuses a wrong token and a cross-origin sign-in", async () => {
		const { handle } = loopback();
		const post = (origin: string, token: string) =>
			handle(
				new Request(`${LOCAL}/_admin/login`, {
					method: "POST",
					headers: { Origin: origin, "Content-Type": "application/x-www-form-urlencoded" },
					body: new URLSearchParams({ token }).toString(),
				}),
				localEnv(),
			);
		const wrong = await post(LOCAL, "not-the-token");
		expect(wrong.status).toBe(401);
		expect(wrong.headers.get("Set-Cookie")).toBeNull();
		const cross = await post("https://evil.example", SECRETS.LOCAL_ADMIN_TOKEN);
		expect(cross.status).toBe(403);
		expect(cross.headers.get("Set-Cookie")).toBeNull();
	});

	it("serves no sign-in form outside the local run", async () => {
		const { handle } = loopback();
		const response = await handle(
			new Request("https://agent.example.com/_admin/login"),
			deployedEnv(),
		);
		expect(response.status).toBe(401);
	});
});

describe("local Chromium", () => {
	it("follows /json/version to a loopback debugger socket", async () => {
		const seen: string[] = [];
		const fetchFn: FetchFn = async (input, init) => {
			const request = new Request(input, init);
			seen.push(request.url);
			if (new URL(request.url).pathname === "/json/version") {
				return Response.json({ webSocketDebuggerUrl: "ws://127.0.0.1:9223/devtools/browser/abc" });
			}
			const pair = new WebSocketPair();
			pair[1].accept();
			return new Response(null, { status: 101, webSocket: pair[0] });
		};
		await new LocalChromium(new URL("http://127.0.0.1:9223"), fetchFn).open();
		expect(seen).toEqual([
			"http://127.0.0.1:9223/json/version",
			"http://127.0.0.1:9223/devtools/browser/abc",
		]);
	});

	it("refuses a debugger URL that leaves loopback", async () => {
		const fetchFn: FetchFn = async () =>
			Response.json({ webSocketDebuggerUrl: "ws://203.0.113.9:9222/devtools/browser/x" });
		await expect(
			new LocalChromium(new URL("http://127.0.0.1:9223"), fetchFn).open(),
		).rejects.toThrow(/loopback/);
	});
});
