/**
 * The seam between the router and whatever runs the gateway: the container (production), loopback
 * services (the local run) or test doubles. Containers cannot run inside workerd tests, so
 * everything above this interface is tested against doubles and the container path by the
 * typechecker and the end-to-end run.
 */

export type BootState =
	| { ready: true }
	| {
			ready: false;
			/** The runtime's own boot phase (`restoring`, `starting`, ...) or the container's state. */
			phase: string;
			/**
			 * Set when the sandbox stopped on its own and waiting will not bring it up (the runtime
			 * refused its configuration or could not restore): a sentence with the cause and the fix.
			 */
			failure?: string;
	  };

/** The runtime's `/healthz` answer is `{ok, phase}`; anything else yields no phase. */
export function phaseOf(body: unknown): string | undefined {
	if (typeof body !== "object" || body === null) return undefined;
	const phase = (body as { phase?: unknown }).phase;
	if (typeof phase !== "string" || !/^[a-z_-]{1,32}$/.test(phase)) return undefined;
	return phase;
}

/** `degraded` still has a gateway process (a snapshot failing, say), so traffic goes through. */
export function isServingPhase(phase: string | undefined): boolean {
	return phase === "ready" || phase === "degraded";
}

/** What the cron job may learn about the sandbox without waking it. */
export type RunningState = {
	running: boolean;
	/** The container library's state (`healthy`, `stopped`, ...) or, locally, the runtime's phase. */
	status: string;
};

export interface Backend {
	/** Starts the sandbox when it is not running and says whether the gateway takes traffic now. */
	prepare(): Promise<BootState>;
	/**
	 * Whether the sandbox runs right now. Never starts it and never counts as activity, so a caller
	 * polling it (the cron job) leaves `sleepAfter` in charge of when the container sleeps.
	 */
	runningState(): Promise<RunningState>;
	/**
	 * Calls the control API only while the sandbox runs, again without starting it or renewing its
	 * sleep timer; `undefined` when it is not running. Same arguments as `control`.
	 */
	controlIfRunning(
		method: "GET" | "POST",
		path: string,
		token: string,
	): Promise<Response | undefined>;
	/** Forwards a plain HTTP request to the gateway. */
	gatewayFetch(request: Request): Promise<Response>;
	/** Opens a WebSocket to the gateway for this upgrade request; resolves to an unaccepted socket. */
	gatewaySocket(request: Request): Promise<WebSocket>;
	/** Calls the runtime's control API; `path` starts with `/v1/`, `token` is a fresh control JWT. */
	control(method: "GET" | "POST", path: string, token: string): Promise<Response>;
}

export interface BrowserSource {
	/** A WebSocket speaking plain CDP to a fresh browser; resolves to an unaccepted socket. */
	open(): Promise<WebSocket>;
}

/** A backend failure whose message is a safe, complete sentence for the caller (no secrets). */
export class BackendUnavailable extends Error {}

/**
 * Runs `prepare()` and turns a failure into the response to send instead: a known cause gets its
 * own sentence, anything else a generic 502 (its details stay out of the answer and the log).
 */
export async function prepareOrRespond(backend: Backend): Promise<BootState | Response> {
	try {
		return await backend.prepare();
	} catch (error) {
		if (error instanceof BackendUnavailable) {
			return Response.json(
				{ error: error.message },
				{ status: 503, headers: { "Cache-Control": "no-store" } },
			);
		}
		return Response.json(
			{
				error:
					"The sandbox did not answer: retry in a minute, and check the Worker logs if it persists.",
			},
			{ status: 502, headers: { "Cache-Control": "no-store" } },
		);
	}
}

/** Headers that carry the admin's credentials: the gateway never needs to see them. */
const CREDENTIAL_HEADERS = [
	"Cf-Access-Jwt-Assertion",
	"Cf-Access-Client-Id",
	"Cf-Access-Client-Secret",
];
const CREDENTIAL_COOKIES = new Set(["CF_Authorization", "molt_admin"]);
/**
 * Client-address headers. OpenClaw refuses a connection that carries them from a peer outside
 * `gateway.trustedProxies` (`proxy_attribution_required`), and the container proxy's address is
 * not ours to pin; without them every browser is a remote client that must pair, which is the
 * product's rule anyway.
 */
const CLIENT_ADDRESS_HEADERS = [
	"Forwarded",
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"X-Real-IP",
	"CF-Connecting-IP",
	"True-Client-IP",
];

/** The request headers the gateway may see: no admin credentials, no client-address claims. */
export function headersForGateway(headers: Headers): Headers {
	const copy = new Headers(headers);
	for (const name of [...CREDENTIAL_HEADERS, ...CLIENT_ADDRESS_HEADERS]) copy.delete(name);
	const cookie = copy.get("Cookie");
	if (cookie) {
		const kept = cookie
			.split(";")
			.map((part) => part.trim())
			.filter(
				(part) => part !== "" && !CREDENTIAL_COOKIES.has(part.split("=", 1)[0]?.trim() ?? ""),
			);
		if (kept.length > 0) copy.set("Cookie", kept.join("; "));
		else copy.delete("Cookie");
	}
	return copy;
}

/** Reads a WebSocket out of an upgrade response, or explains what came back instead. */
export function socketFrom(response: Response, what: string): WebSocket {
	if (response.status === 101 && response.webSocket) return response.webSocket;
	throw new Error(`${what} answered ${response.status} instead of a WebSocket upgrade`);
}
