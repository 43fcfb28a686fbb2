/**
 * Runs around every test: captures everything the Worker writes to the console and fails the test
 * if any configured secret value, or a token minted during the test, shows up in it.
 */
import { afterEach, beforeEach, expect, vi } from "vitest";
import { SECRETS } from "./helpers";

const captured: string[] = [];
/** Tokens a test minted or presented (Access JWTs, control JWTs): they must not be logged either. */
export const extraSecrets: string[] = [];

beforeEach(() => {
	captured.length = 0;
	extraSecrets.length = 0;
	for (const method of ["log", "info", "warn", "error", "debug"] as const) {
		vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
			captured.push(
				args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" "),
			);
		});
	}
});

afterEach(() => {
	vi.restoreAllMocks();
	const output = captured.join("\n");
	for (const secret of [...Object.values(SECRETS), ...extraSecrets]) {
		expect(output.includes(secret), "a secret value reached the log").toBe(false);
	}
});

export function logLines(): string[] {
	return [...captured];
}
