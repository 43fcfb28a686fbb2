/** Small response helpers shared by the route modules. */

const SECURITY_HEADERS: Record<string, string> = {
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy": "no-referrer",
	"Cache-Control": "no-store",
};

/**
 * Pages use `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
 * with a form POST, which the same-origin check would then refuse.
 */
export const PAGE_REFERRER_POLICY = "same-origin";

/** Pages load only their own files: no inline script or style, no framing, no foreign hosts. */
export const PAGE_CSP =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function jsonResponse(body: unknown, status = 200, headers: HeadersInit = {}): Response {
	const response = Response.json(body, { status, headers });
	for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
		if (!response.headers.has(name)) response.headers.set(name, value);
	}
	return response;
}

/** Every error the Worker writes itself: one sentence naming the problem and the fix. */
export function errorResponse(
	status: number,
	message: string,
	headers: HeadersInit = {},
): Response {
	return jsonResponse({ error: message }, status, headers);
}

export function isWebSocketUpgrade(request: Request): boolean {
	return request.headers.get("Upgrade")?.toLowerCase() === "websocket";
}

/** Browsers navigating to a page get HTML; everything else (fetch, CLI, API clients) gets JSON. */
export function wantsHtml(request: Request): boolean {
	if (request.method !== "GET" && request.method !== "HEAD") return false;
	const accept = request.headers.get("Accept") ?? "";
	return accept.includes("text/html");
}

/** Adds the strict headers every page the Worker renders itself carries. */
export function htmlResponse(html: string, status = 200, headers: HeadersInit = {}): Response {
	const response = new Response(html, { status, headers });
	response.headers.set("Content-Type", "text/html; charset=utf-8");
	response.headers.set("Content-Security-Policy", PAGE_CSP);
	response.headers.set("X-Frame-Options", "DENY");
	for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.headers.set(name, value);
	response.headers.set("Referrer-Policy", PAGE_REFERRER_POLICY);
	return response;
}

export function escapeHtml(text: string): string {
	return text
		.replace(/&/g, "&amp;")
		.replace(/</g, "&lt;")
		.replace(/>/g, "&gt;")
		.replace(/"/g, "&quot;")
		.replace(/'/g, "&#39;");
}

/** Reads one cookie by name from a Cookie header; undefined when absent. */
export function readCookie(request: Request, name: string): string | undefined {
	const header = request.headers.get("Cookie");
	if (!header) return undefined;
	for (const part of header.split(";")) {
		const eq = part.indexOf("=");
		if (eq < 0) continue;
		if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
	}
	return undefined;
}
