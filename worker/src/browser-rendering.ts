/**
 * The deployment's Browser Rendering session, shared by every `/cdp` connection. The sandbox's
 * CDP bridge opens one upstream connection per client socket and OpenClaw's browser tool
 * reconnects between tool calls; with a session per connection, pages opened on one connection
 * were gone on the next and every connection cost a browser. So one session is remembered (in
 * the `Sandbox` Durable Object's storage, one object per deployment) and each connection attaches
 * to it; a new one is acquired only when the remembered one is gone, and Browser Rendering's
 * keep-alive ends an idle session by itself.
 *
 * Endpoints, as current @cloudflare/puppeteer and @cloudflare/playwright use them: `POST
 * /v1/devtools/browser?keep_alive=<ms>` acquires a session (answer `{sessionId}`); an upgrade to
 * `/v1/devtools/browser/<sessionId>` attaches to it (several connections at once since September
 * 2026) and speaks plain CDP, one JSON message per text frame, so frames pass through unchanged;
 * `DELETE` on that path ends the session.
 */
import { type BrowserSource, socketFrom } from "./backend";
import { log } from "./log";

/** The binding ignores the host; the libraries use this placeholder. */
const BINDING_ORIGIN = "https://fake.host";
/**
 * Idle time (no CDP traffic, no connection) before Browser Rendering ends the session: the default
 * 60 s is shorter than an agent's pause to think; the platform maximum is 10 minutes.
 */
export const BROWSER_KEEP_ALIVE_MS = 300_000;
const SESSION_ID = /^[A-Za-z0-9-]{1,128}$/;
const SESSION_KEY = "browserSessionId";
const RELEASE_TIMEOUT_MS = 5_000;

/** The remembered session, shared by all connections. Implemented by the `Sandbox` object. */
export interface BrowserSessions {
	/** The remembered session's id, acquiring a session first when none is remembered. */
	current(): Promise<string>;
	/**
	 * Replaces `staleId` after a connection to it failed. If another caller already replaced it,
	 * returns that successor instead of acquiring a second one.
	 */
	replace(staleId: string): Promise<string>;
}

/** The storage the keeper needs: a Durable Object's synchronous KV (`ctx.storage.kv`). */
export type SessionStorage = {
	get(key: string): unknown;
	put(key: string, value: string): void;
	delete(key: string): unknown;
};

type BrowserBinding = Pick<BrowserRun, "fetch">;

/**
 * Runs inside the Durable Object. Calls are serialized in memory: the object is a single instance,
 * and while it waits on Browser Rendering other calls may enter it, so without the queue two
 * concurrent first connections would each acquire a session.
 */
export class BrowserSessionKeeper implements BrowserSessions {
	private queue: Promise<unknown> = Promise.resolve();

	constructor(
		private readonly storage: SessionStorage,
		private readonly binding: BrowserBinding,
	) {}

	current(): Promise<string> {
		return this.serially(async () => this.remembered() ?? (await this.acquire()));
	}

	replace(staleId: string): Promise<string> {
		return this.serially(async () => {
			const remembered = this.remembered();
			if (remembered !== undefined && remembered !== staleId) return remembered;
			this.storage.delete(SESSION_KEY);
			if (SESSION_ID.test(staleId)) await this.release(staleId);
			return this.acquire();
		});
	}

	private serially<T>(task: () => Promise<T>): Promise<T> {
		const run = this.queue.then(task, task);
		this.queue = run.catch(() => undefined);
		return run;
	}

	private remembered(): string | undefined {
		const value = this.storage.get(SESSION_KEY);
		return typeof value === "string" && SESSION_ID.test(value) ? value : undefined;
	}

	private async acquire(): Promise<string> {
		const answer = await this.binding.fetch(
			`${BINDING_ORIGIN}/v1/devtools/browser?keep_alive=${BROWSER_KEEP_ALIVE_MS}`,
			{ method: "POST" },
		);
		if (answer.status !== 200) {
			await answer.body?.cancel();
			throw new Error(`Browser Rendering refused a new session (status ${answer.status})`);
		}
		const body = (await answer.json().catch(() => undefined)) as
			| { sessionId?: unknown }
			| undefined;
		const sessionId = body?.sessionId;
		if (typeof sessionId !== "string" || !SESSION_ID.test(sessionId)) {
			throw new Error("Browser Rendering answered without a usable sessionId");
		}
		this.storage.put(SESSION_KEY, sessionId);
		log("info", "browser session acquired", { route: "cdp" });
		return sessionId;
	}

	/**
	 * Ends a session being replaced, in case it is only unreachable rather than gone: it would
	 * otherwise run (and bill) until its keep-alive ran out. Failure changes nothing.
	 */
	private async release(sessionId: string): Promise<void> {
		try {
			const answer = await this.binding.fetch(
				`${BINDING_ORIGIN}/v1/devtools/browser/${sessionId}`,
				{ method: "DELETE", signal: AbortSignal.timeout(RELEASE_TIMEOUT_MS) },
			);
			await answer.body?.cancel();
			log("info", "browser session released", { route: "cdp", upstream_status: answer.status });
		} catch {
			log("info", "browser session released", { route: "cdp", reason: "unreachable" });
		}
	}
}

type Attempt = { socket: WebSocket } | { gone: boolean; status?: number };

/** The Worker's side: attaches each `/cdp` connection to the remembered session. */
export class BrowserRendering implements BrowserSource {
	constructor(
		private readonly binding: BrowserBinding,
		private readonly sessions: BrowserSessions,
	) {}

	async open(): Promise<WebSocket> {
		const sessionId = await this.sessions.current();
		const first = await this.attach(sessionId);
		if ("socket" in first) return first.socket;
		if (!first.gone) {
			throw new Error(
				`Browser Rendering refused the connection (status ${first.status ?? "none"})`,
			);
		}
		log("info", "browser session gone", { route: "cdp", upstream_status: first.status });
		const second = await this.attach(await this.sessions.replace(sessionId));
		if ("socket" in second) return second.socket;
		throw new Error(
			`Browser Rendering refused the connection to a new session (status ${second.status ?? "none"})`,
		);
	}

	/**
	 * One upgrade. A 4xx other than 429 (rate limit) or a failed fetch means the session ended;
	 * a 429 or 5xx is the service's trouble, and replacing the session would not help.
	 */
	private async attach(sessionId: string): Promise<Attempt> {
		let response: Response;
		try {
			response = await this.binding.fetch(`${BINDING_ORIGIN}/v1/devtools/browser/${sessionId}`, {
				headers: { Upgrade: "websocket" },
			});
		} catch {
			return { gone: true };
		}
		if (response.status === 101 && response.webSocket) {
			return { socket: socketFrom(response, "Browser Rendering") };
		}
		await response.body?.cancel();
		const gone = response.status >= 400 && response.status < 500 && response.status !== 429;
		return { gone, status: response.status };
	}
}
