import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ContainerBackend } from "../src/sandbox";
import { deployedEnv, handlerWith, ORIGIN } from "./helpers";

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
