import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
	ContainerBackend,
	EXIT_CHANGES_LOST,
	EXIT_FAILURES,
	exitCodeOf,
	exitVerdict,
	FAILURE_HOLD_MS,
} from "../src/sandbox";
import { deployedEnv, FakeBackend, handlerWith, ORIGIN, SECRETS } from "./helpers";

// workerd under vitest has no container runtime, so the `Sandbox` class is bound without one.
// These tests reach the real Durable Object over its binding and check what a deployment that
// lost its container application would see: a clear 503, never a 500 or a hang.
describe("Sandbox Durable Object wiring", () => {
	it("explains a Sandbox without a container instead of failing opaquely", async () => {
		const handle = handlerWith({});
		const response = await handle(new Request(`${ORIGIN}/`), deployedEnv());
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("no container attached");
	});

	it("reaches the object over RPC through the real ContainerBackend", async () => {
		const backend = new ContainerBackend(env.SANDBOX, "agent.example.com");
		await expect(backend.prepare()).rejects.toThrow(/no container attached/);
	});

	it("uses one instance per deployment", () => {
		expect(env.SANDBOX.idFromName("moltworker").equals(env.SANDBOX.idFromName("moltworker"))).toBe(
			true,
		);
	});
});

// `make dev CONTAINERS=1` runs this production path under wrangler dev: the container backend,
// with LOCAL_ADMIN_TOKEN in place of Access (there is no Access locally), on loopback only.
describe("production path on loopback (LOCAL_ADMIN_TOKEN, no local backend)", () => {
	const LOOPBACK = "http://127.0.0.1:8787";
	const containersEnv = () =>
		deployedEnv({
			LOCAL_ADMIN_TOKEN: SECRETS.LOCAL_ADMIN_TOKEN,
			CF_ACCESS_AUD: undefined,
			CF_ACCESS_TEAM_DOMAIN: undefined,
		});

	it("signs the admin in with the token and keeps the container backend", async () => {
		const backend = new FakeBackend();
		const seen: URL[] = [];
		const handle = handlerWith({
			backend: (_env, url, local) => {
				expect(local).toBeUndefined();
				seen.push(url);
				return backend;
			},
		});
		const response = await handle(
			new Request(`${LOOPBACK}/api/admin/status`, {
				headers: { Authorization: `Bearer ${SECRETS.LOCAL_ADMIN_TOKEN}` },
			}),
			containersEnv(),
		);
		expect(response.status).toBe(200);
		expect(backend.controlCalls.map((call) => call.path)).toEqual(["/v1/status"]);
		expect(seen.map((url) => url.origin)).toEqual([LOOPBACK]);
		const form = await handle(new Request(`${LOOPBACK}/_admin/login`), containersEnv());
		expect(form.status).toBe(200);
	});

	it("refuses a wrong token, and Access tokens are not what it checks", async () => {
		const backend = new FakeBackend();
		const handle = handlerWith({ backend: () => backend });
		const wrong = await handle(
			new Request(`${LOOPBACK}/api/admin/status`, {
				headers: { Authorization: "Bearer wrong-token-of-some-length" },
			}),
			containersEnv(),
		);
		expect(wrong.status).toBe(401);
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("refuses to serve anything on a non-loopback host while LOCAL_ADMIN_TOKEN is set", async () => {
		const backend = new FakeBackend();
		const handle = handlerWith({ backend: () => backend });
		for (const path of ["/", "/_admin/login", "/api/admin/status"]) {
			const response = await handle(
				new Request(`${ORIGIN}${path}`, {
					headers: { Authorization: `Bearer ${SECRETS.LOCAL_ADMIN_TOKEN}` },
				}),
				containersEnv(),
			);
			expect(response.status, path).toBe(500);
			expect(((await response.json()) as { error: string }).error).toContain(
				"unset LOCAL_ADMIN_TOKEN",
			);
		}
		expect(backend.prepareCalls).toBe(0);
	});
});

// A runtime that exits 2 or 3 will not come up by waiting: the Durable Object remembers the
// exit (onStop) and answers with its sentence for FAILURE_HOLD_MS instead of starting it again.
describe("a sandbox that refused to start", () => {
	const failure = EXIT_FAILURES[3] ?? "";

	it("names exit codes 2 and 3 with their cause and holds them for a minute", () => {
		expect(EXIT_FAILURES[2]).toContain("code 2");
		expect(EXIT_FAILURES[3]).toContain("R2");
		expect(EXIT_FAILURES[0]).toBeUndefined();
		expect(EXIT_FAILURES[143]).toBeUndefined();
		expect(FAILURE_HOLD_MS).toBe(60_000);
	});

	it("holds only the boot refusals; a lost final snapshot is an error but the next start goes ahead", () => {
		expect(exitVerdict(2)).toEqual({ level: "error", hold: true, action: "boot_refused" });
		expect(exitVerdict(3)).toEqual({ level: "error", hold: true, action: "boot_refused" });
		// Exit 4 (the final snapshot failed at SIGTERM): a page saying "could not restore, nothing
		// was lost" would be false twice over, and the store may be back by the next request.
		expect(exitVerdict(EXIT_CHANGES_LOST)).toEqual({
			level: "error",
			hold: false,
			action: "changes_lost",
		});
		expect(EXIT_FAILURES[EXIT_CHANGES_LOST]).toBeUndefined();
		for (const code of [0, 1, 137, 143])
			expect(exitVerdict(code)).toEqual({ level: "info", hold: false });
	});

	it("reads the exit code from the container library's error", () => {
		// The wording of @cloudflare/containers 0.3.7 (UNEXPECTED_EXIT_ERROR), as the start path
		// passes it to onError when the container exits before its ports answer.
		const error = new Error(
			"Error: container exited with unexpected exit code: 3 (while waiting for ports)",
		);
		expect(exitCodeOf(error)).toBe(3);
		expect(exitCodeOf("container exited with unexpected exit code: 2")).toBe(2);
		expect(exitCodeOf(new Error("there is no container instance"))).toBeUndefined();
	});

	it("shows browsers the cause, not the loading page", async () => {
		const backend = new FakeBackend();
		backend.boot = { ready: false, phase: "stopped", failure };
		const handle = handlerWith({ backend: () => backend });
		const response = await handle(
			new Request(`${ORIGIN}/`, { headers: { Accept: "text/html" } }),
			deployedEnv(),
		);
		expect(response.status).toBe(503);
		const html = await response.text();
		expect(html).toContain('id="boot-failure"');
		expect(html).toContain("exited with code 3");
		expect(html).not.toContain("Starting your agent");
		expect(response.headers.get("Content-Security-Policy")).toContain("default-src 'none'");
	});

	it("answers API callers and the admin API with the same sentence", async () => {
		const backend = new FakeBackend();
		backend.boot = { ready: false, phase: "stopped", failure };
		const handle = handlerWith({ backend: () => backend });
		const api = await handle(
			new Request(`${ORIGIN}/`, { headers: { Accept: "application/json" } }),
			deployedEnv(),
		);
		expect(api.status).toBe(503);
		expect(((await api.json()) as { error: string }).error).toBe(failure);
		const admin = await handle(
			new Request("http://127.0.0.1:8787/api/admin/status", {
				headers: { Authorization: `Bearer ${SECRETS.LOCAL_ADMIN_TOKEN}` },
			}),
			deployedEnv({ LOCAL_ADMIN_TOKEN: SECRETS.LOCAL_ADMIN_TOKEN }),
		);
		expect(admin.status).toBe(503);
		expect(((await admin.json()) as { error: string }).error).toBe(failure);
		expect(backend.controlCalls).toHaveLength(0);
	});
});
