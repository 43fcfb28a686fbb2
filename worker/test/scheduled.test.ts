import { env } from "cloudflare:workers";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import type { FetchFn } from "../src/access";
import { defaultBackend } from "../src/app";
import { CONTROL_AUDIENCE, CONTROL_ISSUER } from "../src/control";
import type { AppEnv } from "../src/env";
import {
	CRON_IDENTITY,
	CRON_SNAPSHOT_AFTER_DEFAULT,
	CRON_SNAPSHOT_AFTER_MAX_S,
	CRON_SNAPSHOT_AFTER_MIN_S,
	createScheduled,
	parseCronSnapshotAfter,
} from "../src/scheduled";
import { type ControlCall, deployedEnv, FakeBackend, SECRETS } from "./helpers";
import { extraSecrets, logLines } from "./setup";

function statusBody(pending: boolean, ageSeconds: number | null, phase = "ready") {
	return {
		phase,
		gateway: { state: "running", pid: 42, uptime_s: 600, restarts: 0 },
		snapshot: { last_id: "s1", last_at: "2026-11-22T00:00:00Z", age_s: ageSeconds, pending },
		version: "sandbox-runtime 0.1.0, openclaw 2026.9.6",
	};
}

/** A backend answering `/v1/status` with `status` and `/v1/snapshots` with `snapshot`. */
function runtime(status: () => Response, snapshot = () => Response.json({ id: "s2" })) {
	const backend = new FakeBackend();
	backend.controlAnswer = (call: ControlCall) => {
		extraSecrets.push(call.token);
		return call.path === "/v1/status" ? status() : snapshot();
	};
	return backend;
}

function cronWith(backend: FakeBackend) {
	return createScheduled({ backend: () => backend });
}

function cronLog(): Record<string, unknown> {
	const lines = logLines()
		.map((line) => JSON.parse(line) as Record<string, unknown>)
		.filter((line) => line.event === "cron");
	expect(lines).toHaveLength(1);
	return lines[0] as Record<string, unknown>;
}

const calls = (backend: FakeBackend) => backend.controlCalls.map((c) => `${c.method} ${c.path}`);

describe("cron job", () => {
	it("leaves a sleeping sandbox alone: no start, no control call", async () => {
		const backend = runtime(() => Response.json(statusBody(true, 9999)));
		backend.running = { running: false, status: "stopped" };
		const report = await cronWith(backend)(deployedEnv());
		expect(report.outcome).toBe("not_running");
		expect(backend.prepareCalls).toBe(0);
		expect(backend.controlCalls).toHaveLength(0);
		expect(cronLog()).toMatchObject({ level: "info", route: "cron", action: "not_running" });
	});

	it("requests a snapshot when changes are pending and the last one is old", async () => {
		const backend = runtime(() => Response.json(statusBody(true, 5 * 60 + 1)));
		const report = await cronWith(backend)(deployedEnv());
		expect(report).toMatchObject({ outcome: "snapshot_requested", status: 200 });
		expect(calls(backend)).toEqual(["GET /v1/status", "POST /v1/snapshots"]);
		expect(backend.prepareCalls).toBe(0);
		for (const call of backend.controlCalls) {
			const { payload } = await jwtVerify(
				call.token,
				new TextEncoder().encode(SECRETS.MOLT_CONTROL_SECRET),
				{ audience: CONTROL_AUDIENCE, issuer: CONTROL_ISSUER },
			);
			expect(payload.sub).toBe(CRON_IDENTITY);
		}
		expect(cronLog()).toMatchObject({ action: "snapshot_requested", upstream_status: 200 });
	});

	it("requests a snapshot when changes are pending and none was ever taken", async () => {
		const backend = runtime(() => Response.json(statusBody(true, null)));
		expect((await cronWith(backend)(deployedEnv())).outcome).toBe("snapshot_requested");
		expect(calls(backend)).toEqual(["GET /v1/status", "POST /v1/snapshots"]);
	});

	it.each([
		["pending but the last snapshot is recent", statusBody(true, 30), "snapshot_recent"],
		["nothing pending and the last snapshot old", statusBody(false, 99_999), "nothing_pending"],
		["the runtime still restoring", statusBody(true, 99_999, "restoring"), "runtime_busy"],
	])("only reads the status with %s", async (_label, body, outcome) => {
		const backend = runtime(() => Response.json(body));
		expect((await cronWith(backend)(deployedEnv())).outcome).toBe(outcome);
		expect(calls(backend)).toEqual(["GET /v1/status"]);
		expect(cronLog()).toMatchObject({ level: "info", action: outcome });
	});

	it.each([
		[undefined, 299, "snapshot_recent"],
		[undefined, 300, "snapshot_requested"],
		["30s", 29.9, "snapshot_recent"],
		["30s", 30, "snapshot_requested"],
		[" 2m ", 119, "snapshot_recent"],
		["1h", 3600, "snapshot_requested"],
	])(
		"CRON_SNAPSHOT_AFTER=%s: pending changes %ss after the last snapshot: %s",
		async (after, age, outcome) => {
			const backend = runtime(() => Response.json(statusBody(true, age)));
			const report = await cronWith(backend)(deployedEnv({ CRON_SNAPSHOT_AFTER: after }));
			expect(report.outcome).toBe(outcome);
		},
	);

	it.each(["soon", "5", "9s", "0m", "25h", "1d", "-5m", "1e3s"])(
		"refuses CRON_SNAPSHOT_AFTER=%s with the fix and touches nothing",
		async (after) => {
			const backend = runtime(() => Response.json(statusBody(true, 99_999)));
			const report = await cronWith(backend)(deployedEnv({ CRON_SNAPSHOT_AFTER: after }));
			expect(report.outcome).toBe("not_configured");
			expect(report.reason).toMatch(/^CRON_SNAPSHOT_AFTER is .*: use .*\(unset: 5m\)\.$/);
			expect(backend.controlCalls).toHaveLength(0);
			expect(cronLog()).toMatchObject({
				level: "error",
				action: "not_configured",
				reason: report.reason,
			});
		},
	);

	it("reads CRON_SNAPSHOT_AFTER within its bounds", () => {
		expect(parseCronSnapshotAfter(undefined)).toEqual({ seconds: 300 });
		expect(parseCronSnapshotAfter(CRON_SNAPSHOT_AFTER_DEFAULT)).toEqual({ seconds: 300 });
		expect(parseCronSnapshotAfter(`${CRON_SNAPSHOT_AFTER_MIN_S}s`)).toEqual({ seconds: 10 });
		expect(parseCronSnapshotAfter("24h")).toEqual({ seconds: CRON_SNAPSHOT_AFTER_MAX_S });
		expect(parseCronSnapshotAfter("1441m")).toHaveProperty("error");
	});

	it("logs a control API that cannot be reached and does not throw", async () => {
		const backend = new FakeBackend();
		backend.controlAnswer = () => {
			throw new TypeError("connection refused to http://sandbox/v1/status");
		};
		const report = await cronWith(backend)(deployedEnv());
		expect(report.outcome).toBe("control_unreachable");
		expect(cronLog()).toMatchObject({ level: "warn", action: "control_unreachable" });
		expect(logLines().join("\n")).not.toContain("connection refused");
	});

	it.each([
		["a 503", () => Response.json({ error: "not ready" }, { status: 503 }), 503],
		["a 401", () => Response.json({ error: "unauthorized" }, { status: 401 }), 401],
		["HTML", () => new Response("<html>", { status: 200 }), 200],
		["a status without snapshot", () => Response.json({ phase: "ready" }), 200],
		["a negative age", () => Response.json(statusBody(true, -5)), 200],
	])("logs %s from /v1/status and takes no snapshot", async (_label, answer, status) => {
		const backend = runtime(answer);
		const report = await cronWith(backend)(deployedEnv());
		expect(report).toEqual({ outcome: "status_failed", status });
		expect(calls(backend)).toEqual(["GET /v1/status"]);
		expect(cronLog()).toMatchObject({ level: "warn", upstream_status: status });
	});

	it("logs a refused snapshot with the runtime's status", async () => {
		const backend = runtime(
			() => Response.json(statusBody(true, 99_999)),
			() => Response.json({ error: "a snapshot is already running" }, { status: 409 }),
		);
		const report = await cronWith(backend)(deployedEnv());
		expect(report).toMatchObject({ outcome: "snapshot_failed", status: 409 });
		expect(cronLog()).toMatchObject({ level: "warn", action: "snapshot_failed" });
	});

	it("stops when the sandbox went to sleep between the two calls", async () => {
		const backend = runtime(() => {
			backend.running = { running: false, status: "stopped" };
			return Response.json(statusBody(true, 99_999));
		});
		expect((await cronWith(backend)(deployedEnv())).outcome).toBe("not_running");
		expect(calls(backend)).toEqual(["GET /v1/status"]);
	});

	it("refuses to run without a usable control secret", async () => {
		const backend = runtime(() => Response.json(statusBody(true, 99_999)));
		for (const secret of [undefined, "too-short"]) {
			const report = await cronWith(backend)(deployedEnv({ MOLT_CONTROL_SECRET: secret }));
			expect(report.outcome).toBe("not_configured");
		}
		expect(backend.controlCalls).toHaveLength(0);
	});

	it("never throws, even when the backend itself cannot be built", async () => {
		const cron = createScheduled({
			backend: () => {
				throw new Error("namespace missing");
			},
		});
		expect((await cron(deployedEnv())).outcome).toBe("failed");
	});

	it("reaches the real Sandbox object without starting it (no container in workerd)", async () => {
		const cron = createScheduled({
			backend: (e, url, local) => defaultBackend({ fetch: fetch }, e, url, local),
		});
		const report = await cron({ ...deployedEnv(), SANDBOX: env.SANDBOX });
		expect(report.outcome).toBe("state_unavailable");
	});
});

describe("cron job, local backend", () => {
	function localRun(pending: boolean) {
		const seen: string[] = [];
		const fetchFn: FetchFn = async (input, init) => {
			const request = new Request(input, init);
			const url = new URL(request.url);
			seen.push(`${request.method} ${url.host}${url.pathname}`);
			const token = request.headers.get("Authorization")?.replace("Bearer ", "");
			if (token) extraSecrets.push(token);
			if (url.pathname === "/healthz") return Response.json({ ok: true, phase: "ready" });
			if (url.pathname === "/v1/status") return Response.json(statusBody(pending, 99_999));
			return Response.json({ id: "s2", created_at: "now", changed: true });
		};
		const localEnv: AppEnv = deployedEnv({
			MOLT_LOCAL_BACKEND: "1",
			LOCAL_GATEWAY_URL: "http://127.0.0.1:18789",
			LOCAL_CONTROL_URL: "http://127.0.0.1:8788",
			LOCAL_CDP_URL: "http://127.0.0.1:9223",
			LOCAL_ADMIN_TOKEN: SECRETS.LOCAL_ADMIN_TOKEN,
		});
		const deps = { fetch: fetchFn };
		const cron = createScheduled({
			backend: (e, url, local) => defaultBackend(deps, e, url, local),
		});
		return { seen, run: () => cron(localEnv) };
	}

	it("asks the loopback control API and snapshots pending changes", async () => {
		const { seen, run } = localRun(true);
		expect((await run()).outcome).toBe("snapshot_requested");
		expect(seen).toEqual([
			"GET 127.0.0.1:8788/healthz",
			"GET 127.0.0.1:8788/v1/status",
			"POST 127.0.0.1:8788/v1/snapshots",
		]);
	});

	it("refuses a non-loopback control URL before building a backend", async () => {
		const cron = createScheduled({
			backend: () => {
				throw new Error("must not be built");
			},
		});
		const report = await cron(
			deployedEnv({
				MOLT_LOCAL_BACKEND: "1",
				LOCAL_GATEWAY_URL: "http://127.0.0.1:18789",
				LOCAL_CONTROL_URL: "http://10.0.0.5:8788",
				LOCAL_CDP_URL: "http://127.0.0.1:9223",
				LOCAL_ADMIN_TOKEN: SECRETS.LOCAL_ADMIN_TOKEN,
			}),
		);
		expect(report.outcome).toBe("not_configured");
		expect(cronLog()).toMatchObject({ level: "error", action: "not_configured" });
	});
});
