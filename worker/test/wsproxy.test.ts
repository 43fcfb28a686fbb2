import { describe, expect, it } from "vitest";
import {
	GATEWAY_LIMITS,
	MAX_CLOSE_REASON_BYTES,
	type ProxyLimits,
	pipeWebSockets,
	sendableCloseCode,
	truncateCloseReason,
	UpstreamNotReady,
} from "../src/wsproxy";
import {
	deployedEnv,
	FakeBackend,
	handlerWith,
	messages,
	nextClose,
	nextMessage,
	ORIGIN,
} from "./helpers";

const encoder = new TextEncoder();

/** A client socket (the test's end) piped to an upstream socket (the test's other end). */
function harness(limits: ProxyLimits = GATEWAY_LIMITS) {
	const clientPair = new WebSocketPair();
	const upstreamPair = new WebSocketPair();
	const browser = clientPair[0];
	browser.binaryType = "arraybuffer";
	browser.accept();
	const server = upstreamPair[1];
	server.binaryType = "arraybuffer";
	server.accept();
	let connect: (socket: WebSocket) => void = () => {};
	let fail: (error: unknown) => void = () => {};
	const upstream = new Promise<WebSocket>((resolve, reject) => {
		connect = resolve;
		fail = reject;
	});
	pipeWebSockets(clientPair[1], upstream, limits, "test");
	return {
		browser,
		server,
		open: () => connect(upstreamPair[0]),
		fail,
	};
}

describe("close codes and reasons", () => {
	it.each([
		[1005, 1000],
		[1006, 1011],
		[1015, 1011],
		[1004, 1011],
		[999, 1011],
		[2999, 1011],
		[5000, 1011],
		[1000, 1000],
		[1001, 1001],
		[1008, 1008],
		[1009, 1009],
		[1012, 1012],
		[1013, 1013],
		[1014, 1014],
		[3000, 3000],
		[4999, 4999],
	])("maps %i to %i", (code, expected) => {
		expect(sendableCloseCode(code)).toBe(expected);
	});

	it("truncates long ASCII reasons to 123 bytes", () => {
		expect(encoder.encode(truncateCloseReason("x".repeat(500))).byteLength).toBe(123);
	});

	it("never splits a multi-byte character", () => {
		for (const unit of ["é", "€", "😀"]) {
			for (let prefix = 0; prefix < 4; prefix++) {
				const reason = "a".repeat(prefix) + unit.repeat(80);
				const cut = truncateCloseReason(reason);
				const bytes = encoder.encode(cut).byteLength;
				expect(bytes).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
				expect(bytes).toBeGreaterThan(MAX_CLOSE_REASON_BYTES - 4);
				expect(reason.startsWith(cut)).toBe(true);
				expect(cut).not.toContain("\uFFFD");
			}
		}
	});

	it("keeps short reasons untouched", () => {
		expect(truncateCloseReason("bye")).toBe("bye");
		expect(truncateCloseReason(undefined)).toBe("");
	});
});

describe("piping", () => {
	it("queues frames sent while the upstream connects and delivers them in order", async () => {
		const { browser, server, open } = harness();
		const received = messages(server, 4);
		browser.send("one");
		browser.send(new Uint8Array([1, 2, 3]).buffer);
		browser.send("three");
		await new Promise((resolve) => setTimeout(resolve, 10));
		open();
		browser.send("four");
		const seen = await received;
		expect(seen[0]).toBe("one");
		expect(new Uint8Array(seen[1] as ArrayBuffer)).toEqual(new Uint8Array([1, 2, 3]));
		expect(seen.slice(2)).toEqual(["three", "four"]);
	});

	it("passes frames from upstream to the client", async () => {
		const { browser, server, open } = harness();
		open();
		const got = nextMessage(browser);
		server.send("hello from upstream");
		expect(await got).toBe("hello from upstream");
	});

	it("closes with 1013 instead of dropping frames when the queue is full", async () => {
		const { browser, server, open } = harness({
			maxFrameBytes: 1024,
			maxQueuedFrames: 3,
			maxQueuedBytes: 1024,
		});
		const closed = nextClose(browser);
		for (let i = 0; i < 4; i++) browser.send(`frame ${i}`);
		expect((await closed).code).toBe(1013);
		const upstreamClosed = nextClose(server);
		open();
		expect((await upstreamClosed).code).toBe(1013);
	});

	it("also bounds the queue by bytes", async () => {
		const { browser } = harness({
			maxFrameBytes: 1024,
			maxQueuedFrames: 100,
			maxQueuedBytes: 1500,
		});
		const closed = nextClose(browser);
		browser.send("x".repeat(1000));
		browser.send("y".repeat(1000));
		expect((await closed).code).toBe(1013);
	});

	it("refuses an oversize client frame with 1009 on both sides", async () => {
		const { browser, server, open } = harness({
			maxFrameBytes: 100,
			maxQueuedFrames: 10,
			maxQueuedBytes: 1000,
		});
		open();
		const clientClosed = nextClose(browser);
		const upstreamClosed = nextClose(server);
		browser.send("z".repeat(101));
		expect((await clientClosed).code).toBe(1009);
		expect((await upstreamClosed).code).toBe(1009);
	});

	it("refuses an oversize upstream frame with 1009, counting UTF-8 bytes", async () => {
		const { browser, server, open } = harness({
			maxFrameBytes: 100,
			maxQueuedFrames: 10,
			maxQueuedBytes: 1000,
		});
		open();
		const clientClosed = nextClose(browser);
		// 40 characters, 120 bytes.
		server.send("€".repeat(40));
		expect((await clientClosed).code).toBe(1009);
	});

	it("forwards an upstream close with its code and its (multi-byte) reason", async () => {
		const { browser, server, open } = harness();
		open();
		await new Promise((resolve) => setTimeout(resolve, 5));
		const closed = nextClose(browser);
		// 122 bytes: the longest reason workerd lets a peer send; longer ones are cut by the unit above.
		server.close(4001, "é".repeat(61));
		const { code, reason } = await closed;
		expect(code).toBe(4001);
		expect(reason).toBe("é".repeat(61));
	});

	it("forwards a client close to the upstream, even one that came while connecting", async () => {
		const { browser, server, open } = harness();
		browser.close(1000, "done");
		const upstreamClosed = nextClose(server);
		open();
		const { code, reason } = await upstreamClosed;
		expect(code).toBe(1000);
		expect(reason).toBe("done");
	});

	it("closes the client with 1011 when the upstream cannot be reached", async () => {
		const { browser, fail } = harness();
		const closed = nextClose(browser);
		fail(new Error("connect refused"));
		expect((await closed).code).toBe(1011);
	});

	it("closes the client with 1013 when the upstream is still starting", async () => {
		const { browser, fail } = harness();
		const closed = nextClose(browser);
		fail(new UpstreamNotReady("booting"));
		expect((await closed).code).toBe(1013);
	});
});

describe("gateway WebSocket route", () => {
	it("upgrades, then carries frames both ways through the backend", async () => {
		const backend = new FakeBackend();
		const handle = handlerWith({ backend: () => backend });
		const response = await handle(
			new Request(`${ORIGIN}/?session=main`, { headers: { Upgrade: "websocket" } }),
			deployedEnv(),
		);
		expect(response.status).toBe(101);
		const socket = response.webSocket;
		if (!socket) throw new Error("no socket");
		socket.accept();
		socket.send("ping");
		await new Promise((resolve) => setTimeout(resolve, 10));
		const peer = backend.upstreamPeer;
		if (!peer) throw new Error("backend socket not opened");
		const reply = nextMessage(socket);
		const toUpstream = nextMessage(peer);
		peer.send("pong");
		expect(await reply).toBe("pong");
		socket.send("second");
		expect(await toUpstream).toBe("second");
		expect(new URL(backend.socketRequests[0]?.url ?? "").search).toBe("?session=main");
	});

	it("refuses a WebSocket with 503 while the sandbox boots", async () => {
		const backend = new FakeBackend();
		backend.boot = { ready: false, phase: "restoring" };
		const handle = handlerWith({ backend: () => backend });
		const response = await handle(
			new Request(`${ORIGIN}/`, { headers: { Upgrade: "websocket", Accept: "text/html" } }),
			deployedEnv(),
		);
		expect(response.status).toBe(503);
		expect(response.headers.get("Content-Type")).toContain("application/json");
	});
});

describe("unreadable frames", () => {
	/** The least of a WebSocket pipeWebSockets uses, so a frame can be one no socket would send. */
	class RecordingSocket extends EventTarget {
		binaryType = "arraybuffer";
		closed: { code: number; reason: string } | undefined;
		accept(): void {}
		send(): void {}
		close(code: number, reason: string): void {
			this.closed = { code, reason };
		}
	}
	class UnreadableBlob extends Blob {
		override arrayBuffer(): Promise<ArrayBuffer> {
			return Promise.reject(new Error("gone"));
		}
	}

	it("ends the pipe with 1011 instead of leaving a rejected promise behind", async () => {
		const client = new RecordingSocket();
		pipeWebSockets(
			client as unknown as WebSocket,
			new Promise<WebSocket>(() => {}),
			GATEWAY_LIMITS,
			"test",
		);
		// workerd types MessageEvent data as string | ArrayBuffer; a Blob is what the code guards against.
		const data = new UnreadableBlob(["x"]) as unknown as ArrayBuffer;
		client.dispatchEvent(new MessageEvent("message", { data }));
		await new Promise((resolve) => setTimeout(resolve, 10));
		expect(client.closed?.code).toBe(1011);
		expect(client.closed?.reason).toContain("could not be read");
	});
});
