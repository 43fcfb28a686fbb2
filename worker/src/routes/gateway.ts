/** `/` and everything not claimed by another route: the OpenClaw gateway and its WebSocket. */
import { type Backend, prepareOrRespond } from "../backend";
import { errorResponse, isWebSocketUpgrade, wantsHtml } from "../http";
import { log } from "../log";
import { GATEWAY_LIMITS, pipeWebSockets } from "../wsproxy";
import { failurePage, loadingPage } from "./loading";

const RETRY_AFTER_S = 3;
/** A failed sandbox is tried again after a minute (sandbox.ts); the page checks back then. */
const FAILURE_RETRY_S = 60;

export async function gatewayRoute(request: Request, backend: Backend): Promise<Response> {
	const boot = await prepareOrRespond(backend);
	if (boot instanceof Response) return boot;
	if (!boot.ready && boot.failure) {
		log("warn", "sandbox failed", { route: "gateway", phase: boot.phase });
		if (!isWebSocketUpgrade(request) && wantsHtml(request)) {
			return failurePage(boot.failure, FAILURE_RETRY_S);
		}
		return errorResponse(503, boot.failure, { "Retry-After": String(FAILURE_RETRY_S) });
	}
	if (!boot.ready) {
		log("info", "gateway not ready", { route: "gateway", phase: boot.phase });
		if (!isWebSocketUpgrade(request) && wantsHtml(request)) {
			return loadingPage(boot.phase, RETRY_AFTER_S);
		}
		return errorResponse(
			503,
			`The agent is starting (phase: ${boot.phase}): retry in a few seconds.`,
			{ "Retry-After": String(RETRY_AFTER_S) },
		);
	}
	if (isWebSocketUpgrade(request)) {
		const pair = new WebSocketPair();
		pipeWebSockets(pair[1], backend.gatewaySocket(request), GATEWAY_LIMITS, "gateway");
		return new Response(null, { status: 101, webSocket: pair[0] });
	}
	try {
		return await backend.gatewayFetch(request);
	} catch {
		log("warn", "gateway request failed", { route: "gateway" });
		return errorResponse(
			502,
			"The agent's gateway did not answer: retry, or restart it from /_admin/.",
		);
	}
}
