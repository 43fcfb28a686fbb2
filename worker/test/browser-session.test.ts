import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
	BROWSER_KEEP_ALIVE_MS,
	BrowserRendering,
	BrowserSessionKeeper,
	type SessionStorage,
} from "../src/browser-rendering";
import { sandboxBrowserSessions } from "../src/sandbox";
import { deployedEnv, handlerWith, nextClose, nextMessage, ORIGIN, SECRETS } from "./helpers";

const SESSION_PATH = "/v1/devtools/browser/";

/** A Durable Object's synchronous KV, in memory. */
function memoryStorage(initial: Record<string, string> = {}): SessionStorage & {
	map: Map<string, string>;
} {
	const map = new Map(Object.entries(initial));
	return {
		map,
		get: (key) => map.get(key),
		put: (key, value) => {
			map.set(key, value);
		},
		delete: (key) => map.delete(key),
	};
}

type Call = { method: string; path: string; upgrade: boolean };

/**
 * Browser Rendering as the binding shows it: sessions acquired by POST (after a short delay, so
 * concurrent callers really overlap), attached to by upgrade while alive, 404 once ended.
 */
function fakeRendering(options: { acquireBody?: unknown; acquireStatus?: number } = {}) {
	const alive = new Set<string>();
	const calls: Call[] = [];
	/** The Browser Rendering end of every attached connection, newest last. */
	const peers: { sessionId: string; socket: WebSocket }[] = [];
	let attachStatus: number | undefined;
	let counter = 0;
	const binding = {
		async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
			const request = new Request(input, init);
			const url = new URL(request.url);
			calls.push({
				method: request.method,
				path: `${url.pathname}${url.search}`,
				upgrade: request.headers.get("Upgrade") === "websocket",
			});
			if (request.method === "POST" && url.pathname === "/v1/devtools/browser") {
				await new Promise((resolve) => setTimeout(resolve, 10));
				if (options.acquireBody !== undefined) {
					return Response.json(options.acquireBody, { status: options.acquireStatus ?? 200 });
				}
				counter++;
				const sessionId = `0000000${counter}-7d2f-4c3e-9a8b-1f2e3d4c5b6a`;
				alive.add(sessionId);
				return Response.json({ sessionId });
			}
			const sessionId = url.pathname.slice(SESSION_PATH.length);
			if (request.method === "DELETE") {
				alive.delete(sessionId);
				return new Response(null, { status: 204 });
			}
			if (attachStatus !== undefined) return new Response("busy", { status: attachStatus });
			if (!alive.has(sessionId)) return new Response("session not found", { status: 404 });
			const pair = new WebSocketPair();
			pair[1].accept();
			peers.push({ sessionId, socket: pair[1] });
			return new Response(null, { status: 101, webSocket: pair[0] });
		},
	};
	const acquired = () => calls.filter((call) => call.method === "POST").length;
	return {
		binding,
		calls,
		alive,
		peers,
		acquired,
		failAttachWith: (status: number) => {
			attachStatus = status;
		},
	};
}

function rendering(fake: ReturnType<typeof fakeRendering>, storage = memoryStorage()) {
	const keeper = new BrowserSessionKeeper(storage, fake.binding);
	return { storage, keeper, browser: new BrowserRendering(fake.binding, keeper) };
}

describe("Browser Rendering session reuse", () => {
	it("acquires a session with keep-alive, then attaches to its devtools socket", async () => {
		const fake = fakeRendering();
		const { browser, storage } = rendering(fake);
		const socket = await browser.open();
		expect(socket).toBeInstanceOf(WebSocket);
		const sessionId = [...fake.alive][0];
		expect(fake.calls).toEqual([
			{
				method: "POST",
				path: `/v1/devtools/browser?keep_alive=${BROWSER_KEEP_ALIVE_MS}`,
				upgrade: false,
			},
			{ method: "GET", path: `${SESSION_PATH}${sessionId}`, upgrade: true },
		]);
		expect([...storage.map.values()]).toEqual([sessionId]);
	});

	it("gives two sequential connections the same session", async () => {
		const fake = fakeRendering();
		const { browser } = rendering(fake);
		const first = await browser.open();
		first.accept();
		first.close(1000, "tool call done");
		await browser.open();
		expect(fake.acquired()).toBe(1);
		expect(fake.peers).toHaveLength(2);
		expect(fake.peers[0]?.sessionId).toBe(fake.peers[1]?.sessionId);
	});

	it("replaces a session that ended, once, and keeps using the new one", async () => {
		const fake = fakeRendering();
		const { browser } = rendering(fake);
		await browser.open();
		const first = fake.peers[0]?.sessionId ?? "";
		fake.alive.delete(first); // keep-alive ran out
		await browser.open();
		await browser.open();
		expect(fake.acquired()).toBe(2);
		const second = fake.peers[1]?.sessionId;
		expect(second).not.toBe(first);
		expect(fake.peers[2]?.sessionId).toBe(second);
		// The stale session is ended explicitly in case it was only unreachable.
		expect(fake.calls).toContainEqual({
			method: "DELETE",
			path: `${SESSION_PATH}${first}`,
			upgrade: false,
		});
	});

	it("acquires one session for concurrent first connections", async () => {
		const fake = fakeRendering();
		const { browser } = rendering(fake);
		const sockets = await Promise.all([browser.open(), browser.open(), browser.open()]);
		expect(sockets).toHaveLength(3);
		expect(fake.acquired()).toBe(1);
		expect(new Set(fake.peers.map((peer) => peer.sessionId)).size).toBe(1);
	});

	it("replaces a dead session once when concurrent connections all find it gone", async () => {
		const fake = fakeRendering();
		const stale = "deadbeef-0000-4000-8000-000000000000";
		const { browser } = rendering(fake, memoryStorage({ browserSessionId: stale }));
		await Promise.all([browser.open(), browser.open(), browser.open()]);
		expect(fake.acquired()).toBe(1);
		expect(fake.peers).toHaveLength(3);
		expect(new Set(fake.peers.map((peer) => peer.sessionId)).size).toBe(1);
		expect(fake.calls.filter((call) => call.method === "DELETE")).toHaveLength(1);
	});

	it.each([429, 500, 503])("keeps the session when attaching answers %i", async (status) => {
		const fake = fakeRendering();
		const { browser, storage } = rendering(fake);
		await browser.open();
		const remembered = [...storage.map.values()];
		fake.failAttachWith(status);
		await expect(browser.open()).rejects.toThrow(String(status));
		expect(fake.acquired()).toBe(1);
		expect([...storage.map.values()]).toEqual(remembered);
	});

	it("ignores a malformed remembered id and acquires a session", async () => {
		const fake = fakeRendering();
		const { browser } = rendering(fake, memoryStorage({ browserSessionId: "../../v1/limits" }));
		await browser.open();
		expect(fake.acquired()).toBe(1);
		expect(fake.calls.some((call) => call.path.includes(".."))).toBe(false);
	});

	it.each([
		[{}, 200],
		[{ sessionId: "../../v1/limits" }, 200],
		[{ sessionId: 42 }, 200],
		[{ error: "limit reached" }, 429],
	])("refuses a bad acquire answer %j (%i) without attaching", async (body, status) => {
		const fake = fakeRendering({ acquireBody: body, acquireStatus: status });
		const { browser, storage } = rendering(fake);
		await expect(browser.open()).rejects.toThrow();
		expect(fake.calls).toHaveLength(1);
		expect(storage.map.size).toBe(0);
	});

	it("keeps working after a failed acquire (the queue does not stay broken)", async () => {
		const fake = fakeRendering();
		let refuseNext = true;
		const flaky = {
			fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
				if (!refuseNext) return fake.binding.fetch(input, init);
				refuseNext = false;
				return new Response("overloaded", { status: 503 });
			},
		};
		const browser = new BrowserRendering(flaky, new BrowserSessionKeeper(memoryStorage(), flaky));
		await expect(browser.open()).rejects.toThrow();
		await expect(browser.open()).resolves.toBeInstanceOf(WebSocket);
	});
});

describe("/cdp over a shared session", () => {
	function cdpUpgrade(): Request {
		return new Request(`${ORIGIN}/cdp`, {
			headers: { Upgrade: "websocket", Authorization: `Bearer ${SECRETS.MOLT_CDP_SECRET}` },
		});
	}

	async function connect(handle: ReturnType<typeof handlerWith>): Promise<WebSocket> {
		const response = await handle(cdpUpgrade(), deployedEnv());
		expect(response.status).toBe(101);
		const socket = response.webSocket;
		if (!socket) throw new Error("no socket");
		socket.accept();
		return socket;
	}

	it("hands the next connection the pages of the previous one's session", async () => {
		const fake = fakeRendering();
		const { browser } = rendering(fake);
		const handle = handlerWith({ browser: () => browser });

		const first = await connect(handle);
		const created = JSON.stringify({ id: 1, method: "Target.createTarget", params: {} });
		await new Promise((resolve) => setTimeout(resolve, 30));
		const firstPeer = fake.peers[0]?.socket;
		if (!firstPeer) throw new Error("not attached");
		const seen = nextMessage(firstPeer);
		first.send(created);
		expect(await seen).toBe(created);
		const received: unknown[] = [];
		firstPeer.addEventListener("message", (event) => received.push(event.data));
		const hungUp = nextClose(firstPeer);
		first.close(1000, "tool call done");
		await hungUp;
		expect(received).toEqual([]); // no Browser.close

		await connect(handle);
		await new Promise((resolve) => setTimeout(resolve, 30));
		expect(fake.acquired()).toBe(1);
		expect(fake.peers.map((peer) => peer.sessionId)).toEqual([
			fake.peers[0]?.sessionId,
			fake.peers[0]?.sessionId,
		]);
	});
});

describe("Sandbox object as the session's home", () => {
	it("is reached over RPC (workerd has no container, so the object refuses to start)", async () => {
		const sessions = sandboxBrowserSessions(env.SANDBOX);
		await expect(sessions.current()).rejects.toThrow(/Containers have not been enabled/);
	});
});
