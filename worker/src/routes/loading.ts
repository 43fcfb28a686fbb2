/** The page a browser sees while the sandbox boots: plain HTML that reloads itself, no script. */
import { escapeHtml, htmlResponse } from "../http";

const STYLE =
	"body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2328}" +
	"h1{font-size:1.4rem}.phase{font-family:ui-monospace,monospace;background:#f3f4f6;padding:.1rem .4rem;border-radius:4px}";

let styleHash: string | undefined;

async function hashOf(text: string): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
	return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** The page a browser sees when the sandbox stopped on its own: the cause, no spinner. */
export async function failurePage(message: string, retryAfterS: number): Promise<Response> {
	return page(
		"Your agent could not start",
		`<p role="alert" id="boot-failure">${escapeHtml(message)}</p>
<p>This page checks again in ${retryAfterS} seconds.</p>`,
		retryAfterS,
	);
}

export async function loadingPage(phase: string, retryAfterS: number): Promise<Response> {
	return page(
		"Starting your agent",
		`<p role="status" id="boot-phase">Boot phase: <span class="phase">${escapeHtml(phase)}</span></p>
<p>The sandbox was asleep or is restoring its saved state. This page reloads every ${retryAfterS} seconds and opens the agent once it is ready.</p>`,
		retryAfterS,
	);
}

async function page(title: string, body: string, retryAfterS: number): Promise<Response> {
	styleHash ??= await hashOf(STYLE);
	const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${retryAfterS}">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
	const response = htmlResponse(html, 503, { "Retry-After": String(retryAfterS) });
	response.headers.set(
		"Content-Security-Policy",
		`default-src 'none'; style-src 'sha256-${styleHash}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
	);
	return response;
}
