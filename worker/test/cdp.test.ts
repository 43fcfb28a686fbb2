import { describe, expect, it } from "vitest";
import { CDP_MAX_FRAME_BYTES } from "../src/routes/cdp";
import {
	deployedEnv,
	FakeBrowser,
	handlerWith,
	nextClose,
	nextMessage,
	ORIGIN,
	SECRETS,
} from "./helpers";

function cdpRequest(authorization?: string, path = "/cdp", upgrade = true): Request {
	const headers = new Headers();
	if (upgrade) headers.set("Upgrade", "websocket");
	if (authorization !== undefined) headers.set("Authorization", authorization);
	return new Request(`${ORIGIN}${path}`, { headers });
}

function setup() {
	const browser = new FakeBrowser();
	const handle = handlerWith({ browser: () => browser });
	return { browser, handle };
}

async function openSocket(response: Response): Promise<WebSocket> {
	expect(response.status).toBe(101);
	const socket = response.webSocket;
	if (!socket) throw new Error("no socket");
	socket.binaryType = "arraybuffer";
	socket.accept();
	return socket;
}

describe("/cdp authentication", () => {
	it.each([
		["no header", undefined],
		["a wrong secret of the same length", `Bearer ${"x".repeat(SECRETS.MOLT_CDP_SECRET.length)}`],
		["a wrong secret of another length", "Bearer short"],
		["the secret with a suffix", `Bearer ${SECRETS.MOLT_CDP_SECRET}x`],
		["the secret as Basic", `Basic ${SECRETS.MOLT_CDP_SECRET}`],
		["an empty bearer", "Bearer "],
	])("refuses %s with 401 and opens no browser", async (_label, authorization) => {
		const { browser, handle } = setup();
		const response = await handle(cdpRequest(authorization), deployedEnv());
		expect(response.status).toBe(401);
		expect(browser.opened).toBe(0);
	});

	it("refuses the secret in the query string", async () => {
		const { browser, handle } = setup();
		const request = new Request(`${ORIGIN}/cdp?secret=${SECRETS.MOLT_CDP_SECRET}`, {
			headers: { Upgrade: "websocket" },
		});
		expect((await handle(request, deployedEnv())).status).toBe(401);
		expect(browser.opened).toBe(0);
	});

	it("answers 503 when MOLT_CDP_SECRET is not configured", async () => {
		const { browser, handle } = setup();
		const response = await handle(
			cdpRequest("Bearer anything"),
			deployedEnv({ MOLT_CDP_SECRET: undefined }),
		);
		expect(response.status).toBe(503);
		expect(((await response.json()) as { error: string }).error).toContain("MOLT_CDP_SECRET");
		expect(browser.opened).toBe(0);
	});

	it("accepts the right secret and opens one browser", async () => {
		const { browser, handle } = setup();
		await openSocket(await handle(cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`), deployedEnv()));
		await new Promise((resolve) => setTimeout(resolve, 5));
		expect(browser.opened).toBe(1);
	});

	it("asks for a WebSocket upgrade on plain HTTP", async () => {
		const { handle } = setup();
		const response = await handle(
			cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`, "/cdp", false),
			deployedEnv(),
		);
		expect(response.status).toBe(426);
	});
});

describe("/cdp/json/version", () => {
	it("requires the secret", async () => {
		const { handle } = setup();
		expect(
			(await handle(cdpRequest(undefined, "/cdp/json/version", false), deployedEnv())).status,
		).toBe(401);
	});

	it("describes the endpoint without embedding the secret", async () => {
		const { handle } = setup();
		const response = await handle(
			cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`, "/cdp/json/version", false),
			deployedEnv(),
		);
		expect(response.status).toBe(200);
		const text = await response.text();
		expect(text).not.toContain(SECRETS.MOLT_CDP_SECRET);
		const body = JSON.parse(text) as { webSocketDebuggerUrl: string };
		expect(body.webSocketDebuggerUrl).toBe("wss://agent.example.com/cdp");
	});
});

describe("/cdp message passing", () => {
	it("passes CDP messages through unchanged, including multi-MiB ones, both ways", async () => {
		const { browser, handle } = setup();
		const socket = await openSocket(
			await handle(cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`), deployedEnv()),
		);
		const command = JSON.stringify({
			id: 1,
			method: "Page.captureScreenshot",
			params: { format: "png" },
		});
		socket.send(command);
		await new Promise((resolve) => setTimeout(resolve, 10));
		const peer = browser.peer;
		if (!peer) throw new Error("browser not opened");
		// A screenshot answer larger than the old 1 MiB chunk size.
		const big = JSON.stringify({ id: 1, result: { data: "A".repeat(5 * 1024 * 1024) } });
		const toClient = nextMessage(socket);
		peer.send(big);
		expect(await toClient).toBe(big);
		const bigCommand = JSON.stringify({
			id: 2,
			method: "Runtime.evaluate",
			params: { expression: "x".repeat(3 * 1024 * 1024) },
		});
		const toBrowser = nextMessage(peer);
		socket.send(bigCommand);
		expect(await toBrowser).toBe(bigCommand);
	});

	it("closes only its own connection when the sandbox hangs up, never the browser", async () => {
		const { browser, handle } = setup();
		const socket = await openSocket(
			await handle(cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`), deployedEnv()),
		);
		await new Promise((resolve) => setTimeout(resolve, 5));
		const peer = browser.peer;
		if (!peer) throw new Error("browser not opened");
		const received: unknown[] = [];
		peer.addEventListener("message", (event) => received.push(event.data));
		const closed = nextClose(peer);
		socket.close(1000, "tool done");
		expect((await closed).code).toBe(1000);
		// No Browser.close: the session outlives the connection for the bridge's next one.
		expect(received).toEqual([]);
	});

	it("closes with 1009 when a frame exceeds the CDP limit", async () => {
		const { browser, handle } = setup();
		const socket = await openSocket(
			await handle(cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`), deployedEnv()),
		);
		await new Promise((resolve) => setTimeout(resolve, 5));
		const closed = nextClose(socket);
		browser.peer?.send("x".repeat(CDP_MAX_FRAME_BYTES + 1));
		expect((await closed).code).toBe(1009);
	});

	it("closes with 1011 when no browser session can be had", async () => {
		const handle = handlerWith({
			browser: () => ({
				open: async () => {
					throw new Error("quota exhausted");
				},
			}),
		});
		const socket = await openSocket(
			await handle(cdpRequest(`Bearer ${SECRETS.MOLT_CDP_SECRET}`), deployedEnv()),
		);
		expect((await nextClose(socket)).code).toBe(1011);
	});
});
