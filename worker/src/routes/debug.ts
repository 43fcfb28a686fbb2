/**
 * `/debug/*`: read-only diagnostics, off unless DEBUG_ROUTES is "true", behind the same admin
 * check as the rest. Settings are reported by name and presence only, never by value.
 */
import type { Backend } from "../backend";
import { controlSecretProblem } from "../control";
import {
	type AppEnv,
	CONTAINER_SECRET_NAMES,
	CONTAINER_VAR_NAMES,
	isLocalMode,
	setting,
} from "../env";
import { errorResponse, jsonResponse } from "../http";
import { callControl } from "./admin";

const MAX_LOG_LINES = 1000;

export async function debugRoute(
	request: Request,
	env: AppEnv,
	identity: string,
	backend: Backend,
): Promise<Response> {
	if (env.DEBUG_ROUTES !== "true") {
		return errorResponse(
			404,
			'Debug routes are off: set the Worker var DEBUG_ROUTES to "true" to enable them.',
		);
	}
	if (request.method !== "GET")
		return errorResponse(405, "Debug routes are read-only: use GET.", { Allow: "GET" });
	const url = new URL(request.url);
	if (url.pathname === "/debug/config") {
		const names = [
			...CONTAINER_SECRET_NAMES,
			...CONTAINER_VAR_NAMES,
			"CF_ACCESS_AUD",
			"CF_ACCESS_TEAM_DOMAIN",
		] as const;
		const present = Object.fromEntries(
			names.map((name) => [name, setting(env, name) !== undefined]),
		);
		return jsonResponse({
			mode: isLocalMode(env) ? "local" : "container",
			settings_present: present,
		});
	}
	if (url.pathname === "/debug/logs") {
		const raw = url.searchParams.get("lines") ?? "200";
		if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LOG_LINES) {
			return errorResponse(400, `lines must be a whole number from 1 to ${MAX_LOG_LINES}.`);
		}
		const secret = setting(env, "MOLT_CONTROL_SECRET");
		const problem = controlSecretProblem(secret);
		if (problem || !secret) return errorResponse(503, problem ?? "MOLT_CONTROL_SECRET is not set.");
		return callControl(
			backend,
			"GET",
			`/v1/logs?lines=${Number(raw)}`,
			identity,
			secret,
			"debug_logs",
		);
	}
	return errorResponse(404, "Unknown debug path: try /debug/config or /debug/logs?lines=200.");
}
