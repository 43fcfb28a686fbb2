import { describe, expect, it } from "vitest";
import { log } from "../src/log";
import {
	accessKit,
	certsEndpoint,
	deployedEnv,
	FakeBackend,
	handlerWith,
	ORIGIN,
	SECRETS,
} from "./helpers";
import { extraSecrets, logLines } from "./setup";

describe("logging", () => {
	it("writes only allow-listed fields", () => {
		log("info", "test event", {
			path: "/x",
			status: 200,
			token: SECRETS.OPENCLAW_GATEWAY_TOKEN,
			authorization: `Bearer ${SECRETS.MOLT_CDP_SECRET}`,
		});
		const line = JSON.parse(logLines().at(-1) ?? "{}") as Record<string, unknown>;
		expect(line).toEqual({ level: "info", event: "test event", path: "/x", status: 200 });
	});

	it("cuts long values and control characters so a field cannot forge lines", () => {
		log("warn", "x", { reason: `a\nb${"c".repeat(500)}` });
		const line = JSON.parse(logLines().at(-1) ?? "{}") as { reason: string };
		expect(line.reason.startsWith("a?b")).toBe(true);
		expect(line.reason.length).toBeLessThanOrEqual(203);
	});

	it("logs requests by path only, never the query string or credentials", async () => {
		const kit = await accessKit();
		const certs = certsEndpoint(kit.jwks);
		const backend = new FakeBackend();
		const handle = handlerWith({ fetch: certs.fetchFn, backend: () => backend });
		const token = await kit.sign();
		extraSecrets.push(token);
		await handle(
			new Request(`${ORIGIN}/?token=${SECRETS.OPENCLAW_GATEWAY_TOKEN}`, {
				headers: { Authorization: `Bearer ${SECRETS.OPENCLAW_GATEWAY_TOKEN}` },
			}),
			deployedEnv(),
		);
		await handle(
			new Request(`${ORIGIN}/api/admin/status`, { headers: { "Cf-Access-Jwt-Assertion": token } }),
			deployedEnv(),
		);
		await handle(
			new Request(`${ORIGIN}/cdp`, {
				headers: { Authorization: `Bearer ${SECRETS.MOLT_CDP_SECRET}x` },
			}),
			deployedEnv(),
		);
		extraSecrets.push(...backend.controlCalls.map((call) => call.token));
		const lines = logLines();
		// The guard in setup.ts checks these lines for every secret; make sure there are lines to check.
		expect(lines.length).toBeGreaterThanOrEqual(4);
		expect(lines.join("\n")).toContain('"path":"/"');
		expect(lines.join("\n")).toContain('"identity":"admin@example.com"');
	});
});
