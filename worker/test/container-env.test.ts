import { describe, expect, it } from "vitest";
import {
	containerConfigProblem,
	containerEnv,
	parseSleepAfter,
	publicOrigin,
} from "../src/container-env";
import { CONTAINER_SECRET_NAMES, CONTAINER_VAR_NAMES } from "../src/env";
import { deployedEnv, SECRETS } from "./helpers";

describe("container environment", () => {
	it("passes only the documented names, optional ones only when set", () => {
		const env = deployedEnv({
			MODEL_PRIMARY: "anthropic/claude-sonnet-4-5",
			OPENAI_API_KEY: "",
			TELEGRAM_BOT_TOKEN: "   ",
			LOCAL_ADMIN_TOKEN: "never-passed-0123456789",
			CF_ACCESS_AUD: "never-passed",
		});
		const vars = containerEnv(env, "agent.example.com");
		const allowed = new Set<string>([
			...CONTAINER_SECRET_NAMES,
			...CONTAINER_VAR_NAMES,
			"MOLT_STORE",
			"MOLT_CDP_UPSTREAM",
			"MOLT_PUBLIC_ORIGIN",
		]);
		for (const name of Object.keys(vars)) expect(allowed.has(name), name).toBe(true);
		expect(vars.OPENCLAW_GATEWAY_TOKEN).toBe(SECRETS.OPENCLAW_GATEWAY_TOKEN);
		expect(vars.MODEL_PRIMARY).toBe("anthropic/claude-sonnet-4-5");
		expect(vars).not.toHaveProperty("OPENAI_API_KEY");
		expect(vars).not.toHaveProperty("TELEGRAM_BOT_TOKEN");
		expect(vars).not.toHaveProperty("SLACK_APP_TOKEN");
		expect(vars.MOLT_STORE).toBe("r2");
		expect(vars.MOLT_CDP_UPSTREAM).toBe("wss://agent.example.com/cdp");
		expect(vars.MOLT_PUBLIC_ORIGIN).toBe("https://agent.example.com");
	});

	it("gives no CDP upstream without a CDP secret or a valid host", () => {
		expect(
			containerEnv(deployedEnv({ MOLT_CDP_SECRET: undefined }), "agent.example.com"),
		).not.toHaveProperty("MOLT_CDP_UPSTREAM");
		expect(containerEnv(deployedEnv(), "bad host/../x")).not.toHaveProperty("MOLT_CDP_UPSTREAM");
		expect(containerEnv(deployedEnv(), "bad host/../x")).not.toHaveProperty("MOLT_PUBLIC_ORIGIN");
	});

	it.each([
		// A deployed Worker is https on its host name, whatever the request's scheme or port.
		["https://agent.example.com", "https://agent.example.com"],
		["http://agent.example.com", "https://agent.example.com"],
		["https://Agent.Example.com:8443", "https://agent.example.com"],
		// Storage written by earlier versions holds the bare host name.
		["agent.example.com", "https://agent.example.com"],
		// `wrangler dev` on this machine keeps its scheme and port.
		["http://127.0.0.1:8787", "http://127.0.0.1:8787"],
		["http://localhost:9000", "http://localhost:9000"],
		["http://[::1]:8787", "http://[::1]:8787"],
		["ftp://agent.example.com", undefined],
		["https://user:pw@agent.example.com", undefined],
		["bad host/../x", undefined],
		["", undefined],
	])("takes the public origin of %s as %s", (address, expected) => {
		expect(publicOrigin(address)).toBe(expected);
	});

	it("points the container at the local Worker's origin under wrangler dev", () => {
		const vars = containerEnv(deployedEnv(), "http://127.0.0.1:8787");
		expect(vars.MOLT_PUBLIC_ORIGIN).toBe("http://127.0.0.1:8787");
		// Plain ws:// only for a loopback origin: the secret still travels in a header.
		expect(vars.MOLT_CDP_UPSTREAM).toBe("ws://127.0.0.1:8787/cdp");
		expect(containerEnv(deployedEnv(), "http://agent.example.com:80").MOLT_CDP_UPSTREAM).toBe(
			"wss://agent.example.com/cdp",
		);
	});

	it.each([
		"OPENCLAW_GATEWAY_TOKEN",
		"MOLT_SNAPSHOT_KEY",
		"R2_ENDPOINT",
		"R2_BUCKET",
		"R2_ACCESS_KEY_ID",
		"R2_SECRET_ACCESS_KEY",
		"MOLT_CONTROL_SECRET",
	] as const)("names %s when it is missing", (name) => {
		expect(containerConfigProblem(deployedEnv({ [name]: undefined }))).toContain(name);
	});

	it("finds nothing wrong with a complete configuration", () => {
		expect(containerConfigProblem(deployedEnv())).toBeUndefined();
	});
});

describe("SLEEP_AFTER", () => {
	it.each([
		["10m", { seconds: 600 }],
		["90s", { seconds: 90 }],
		["2h", { seconds: 7200 }],
		["never", "never"],
		[undefined, { seconds: 600 }],
		["", { seconds: 600 }],
	])("parses %s", (raw, expected) => {
		expect(parseSleepAfter(raw)).toEqual(expected);
	});

	it.each(["10", "10 minutes", "-5m", "1d", "30s", "01m", "1000000m"])(
		"refuses %s with the fix",
		(raw) => {
			const result = parseSleepAfter(raw);
			expect(result).toHaveProperty("error");
			expect((result as { error: string }).error).toContain("SLEEP_AFTER");
		},
	);
});
