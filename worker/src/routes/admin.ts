/**
 * `/api/admin/*`: the admin UI's API, a thin layer over the runtime's control API. Every call is
 * made with a fresh control JWT naming the signed-in admin; ids are checked here before they are
 * put into a path, and mutating calls must be same-origin POSTs.
 */
import { type Backend, prepareOrRespond } from "../backend";
import { controlSecretProblem, mintControlToken } from "../control";
import { errorResponse, jsonResponse } from "../http";
import { log } from "../log";

/** Device and pairing-request ids: OpenClaw uses hex digests and UUIDs; allow only their alphabet. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const MAX_RUNTIME_ERROR_CHARS = 300;

type Action = { method: "GET" | "POST"; controlPath: string; action: string };

/** Maps an admin API path to the control API call it stands for, or says what is wrong. */
export function resolveAdminPath(
	pathname: string,
): Action | { status: 400 | 404; message: string } {
	const rest = pathname.slice("/api/admin".length);
	const fixed: Record<string, Action> = {
		"/status": { method: "GET", controlPath: "/v1/status", action: "status" },
		"/snapshots": { method: "GET", controlPath: "/v1/snapshots", action: "list_snapshots" },
		"/snapshots/now": { method: "POST", controlPath: "/v1/snapshots", action: "snapshot_now" },
		"/gateway/restart": {
			method: "POST",
			controlPath: "/v1/gateway/restart",
			action: "restart_gateway",
		},
		"/devices": { method: "GET", controlPath: "/v1/devices", action: "list_devices" },
	};
	const known = fixed[rest];
	if (known) return known;
	const pending = /^\/devices\/pending\/([^/]+)\/(approve|reject)$/.exec(rest);
	if (pending) {
		const [, id, verb] = pending as unknown as [string, string, "approve" | "reject"];
		if (!ID_PATTERN.test(id)) {
			return {
				status: 400,
				message: "That pairing request id is malformed: copy it from the pending list.",
			};
		}
		return {
			method: "POST",
			controlPath: `/v1/devices/pending/${id}/${verb}`,
			action: `pairing_${verb}`,
		};
	}
	const revoke = /^\/devices\/([^/]+)\/revoke$/.exec(rest);
	if (revoke) {
		const id = revoke[1] ?? "";
		if (!ID_PATTERN.test(id)) {
			return {
				status: 400,
				message: "That device id is malformed: copy it from the paired devices list.",
			};
		}
		return { method: "POST", controlPath: `/v1/devices/${id}/revoke`, action: "device_revoke" };
	}
	return { status: 404, message: "Unknown admin API path." };
}

/** Same-origin check for mutating calls: browsers always send Origin on a cross-site POST. */
export function sameOrigin(request: Request): boolean {
	const origin = request.headers.get("Origin");
	return origin !== null && origin === new URL(request.url).origin;
}

export async function adminApiRoute(
	request: Request,
	identity: string,
	backend: Backend,
	controlSecret: string | undefined,
): Promise<Response> {
	const url = new URL(request.url);
	const resolved = resolveAdminPath(url.pathname);
	if ("status" in resolved) return errorResponse(resolved.status, resolved.message);
	if (request.method !== resolved.method) {
		return errorResponse(405, `Use ${resolved.method} for this admin call.`, {
			Allow: resolved.method,
		});
	}
	if (resolved.method === "POST" && !sameOrigin(request)) {
		log("warn", "admin call refused", {
			route: "admin",
			reason: "cross_origin",
			action: resolved.action,
		});
		return errorResponse(403, "Cross-origin admin call refused: use the admin page on this host.");
	}
	const problem = controlSecretProblem(controlSecret);
	if (problem || !controlSecret)
		return errorResponse(503, problem ?? "MOLT_CONTROL_SECRET is not set.");
	return callControl(
		backend,
		resolved.method,
		resolved.controlPath,
		identity,
		controlSecret,
		resolved.action,
	);
}

/** One control API call, with the runtime's answer or error passed on as a clear message. */
export async function callControl(
	backend: Backend,
	method: "GET" | "POST",
	controlPath: string,
	identity: string,
	controlSecret: string,
	action: string,
): Promise<Response> {
	const boot = await prepareOrRespond(backend);
	if (boot instanceof Response) return boot;
	if (!boot.ready && boot.failure) {
		return jsonResponse({ error: boot.failure, phase: boot.phase }, 503, { "Retry-After": "60" });
	}
	if (!boot.ready) {
		return jsonResponse(
			{
				error: `The sandbox is starting (phase: ${boot.phase}): retry in a few seconds.`,
				phase: boot.phase,
			},
			503,
			{ "Retry-After": "3" },
		);
	}
	const token = await mintControlToken(controlSecret, identity);
	let response: Response;
	try {
		response = await backend.control(method, controlPath, token);
	} catch {
		log("warn", "control call failed", { route: "admin", action, reason: "unreachable" });
		return errorResponse(
			502,
			"The sandbox runtime did not answer: retry, or check the container logs.",
		);
	}
	const body: unknown = await response.json().catch(() => undefined);
	log(response.ok ? "info" : "warn", "control call", {
		route: "admin",
		action,
		identity,
		upstream_status: response.status,
	});
	if (response.status === 401) {
		return errorResponse(
			502,
			"The sandbox runtime refused the Worker's control token: MOLT_CONTROL_SECRET differs between the Worker and the container; run pulumi up again.",
		);
	}
	if (body === undefined || typeof body !== "object" || body === null) {
		return errorResponse(
			502,
			`The sandbox runtime answered ${response.status} without JSON: check its logs.`,
		);
	}
	if (!response.ok) {
		const message = (body as { error?: unknown }).error;
		const text =
			typeof message === "string" && message.trim() !== ""
				? message.slice(0, MAX_RUNTIME_ERROR_CHARS)
				: `request failed with status ${response.status}`;
		const status = response.status >= 400 && response.status < 600 ? response.status : 502;
		return errorResponse(status, `The sandbox runtime says: ${text}`);
	}
	return jsonResponse(body);
}
