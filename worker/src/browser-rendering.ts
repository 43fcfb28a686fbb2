/**
 * A Browser Rendering session through the `browser` binding. Current @cloudflare/puppeteer and
 * @cloudflare/playwright (April 2026) acquire a session with `POST /v1/devtools/browser` (answer
 * `{sessionId}`) and connect with an upgrade to `/v1/devtools/browser/<sessionId>`, which speaks
 * plain CDP: one JSON message per text frame. The older `/v1/acquire` + `/v1/connectDevtools`
 * pair wrapped messages in length-prefixed binary chunks; both libraries dropped that protocol,
 * so frames pass through here unchanged.
 */
import { type BrowserSource, socketFrom } from "./backend";

/** The binding ignores the host; the libraries use this placeholder. */
const BINDING_ORIGIN = "https://fake.host";
/**
 * Idle time (no CDP traffic) before Browser Rendering ends the session: the default 60 s is
 * shorter than an agent's pause to think; the platform maximum is 10 minutes.
 */
export const BROWSER_KEEP_ALIVE_MS = 300_000;
const SESSION_ID = /^[A-Za-z0-9-]{1,128}$/;

export class BrowserRendering implements BrowserSource {
	constructor(private readonly binding: Pick<BrowserRun, "fetch">) {}

	async open(): Promise<WebSocket> {
		const acquire = await this.binding.fetch(
			`${BINDING_ORIGIN}/v1/devtools/browser?keep_alive=${BROWSER_KEEP_ALIVE_MS}`,
			{ method: "POST" },
		);
		if (acquire.status !== 200) {
			throw new Error(`Browser Rendering refused a new session (status ${acquire.status})`);
		}
		const body = (await acquire.json().catch(() => undefined)) as
			| { sessionId?: unknown }
			| undefined;
		const sessionId = body?.sessionId;
		if (typeof sessionId !== "string" || !SESSION_ID.test(sessionId)) {
			throw new Error("Browser Rendering answered without a usable sessionId");
		}
		const response = await this.binding.fetch(
			`${BINDING_ORIGIN}/v1/devtools/browser/${sessionId}`,
			{
				headers: { Upgrade: "websocket" },
			},
		);
		return socketFrom(response, "Browser Rendering");
	}
}
