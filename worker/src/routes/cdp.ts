/**
 * `/cdp`: the sandbox's browser. The runtime's CDP bridge connects here with the shared secret in
 * an `Authorization: Bearer` header (never in the URL) and gets a Browser Rendering session (or
 * the local Chromium); CDP messages pass through unchanged in both directions. A hang-up closes
 * only this connection: the browser stays up for the next one (its keep-alive ends it when idle).
 */
import type { BrowserSource } from "../backend";
import { bearerToken, secretEquals } from "../compare";
import { errorResponse, isWebSocketUpgrade, jsonResponse } from "../http";
import { log } from "../log";
import { MAX_QUEUED_BYTES, MAX_QUEUED_FRAMES, type ProxyLimits, pipeWebSockets } from "../wsproxy";

/** CDP frames carry screenshots and DOM snapshots; 16 MiB leaves room below the platform's 32 MiB. */
export const CDP_MAX_FRAME_BYTES = 16 * 1024 * 1024;

const CDP_LIMITS: ProxyLimits = {
	maxFrameBytes: CDP_MAX_FRAME_BYTES,
	maxQueuedFrames: MAX_QUEUED_FRAMES,
	maxQueuedBytes: Math.max(MAX_QUEUED_BYTES, CDP_MAX_FRAME_BYTES),
};

export async function cdpRoute(
	request: Request,
	secret: string | undefined,
	browser: () => BrowserSource,
): Promise<Response> {
	if (!secret) {
		return errorResponse(
			503,
			"The Worker secret MOLT_CDP_SECRET is not set, so /cdp is off: pulumi up sets it.",
		);
	}
	const presented = bearerToken(request);
	if (presented === undefined || !(await secretEquals(presented, secret))) {
		log("warn", "cdp refused", {
			route: "cdp",
			reason: presented === undefined ? "no_token" : "bad_token",
		});
		return errorResponse(401, "unauthorized", { "WWW-Authenticate": 'Bearer realm="cdp"' });
	}
	const url = new URL(request.url);
	if (url.pathname === "/cdp/json/version") {
		if (request.method !== "GET") return errorResponse(405, "Use GET for /cdp/json/version.");
		const scheme = url.protocol === "https:" ? "wss:" : "ws:";
		return jsonResponse({
			Browser: "Cloudflare Browser Rendering",
			"Protocol-Version": "1.3",
			webSocketDebuggerUrl: `${scheme}//${url.host}/cdp`,
		});
	}
	if (url.pathname !== "/cdp")
		return errorResponse(404, "Unknown /cdp path: use /cdp or /cdp/json/version.");
	if (!isWebSocketUpgrade(request)) {
		return errorResponse(
			426,
			"/cdp speaks WebSocket only: connect with an Upgrade: websocket request.",
			{
				Upgrade: "websocket",
			},
		);
	}
	const pair = new WebSocketPair();
	let upstream: Promise<WebSocket>;
	try {
		upstream = browser().open();
	} catch (error) {
		upstream = Promise.reject(error);
	}
	upstream.catch(() => log("warn", "browser session failed", { route: "cdp" }));
	pipeWebSockets(pair[1], upstream, CDP_LIMITS, "cdp");
	return new Response(null, { status: 101, webSocket: pair[0] });
}
