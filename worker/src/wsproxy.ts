/**
 * Joins two WebSockets: the client's (already upgraded by the Worker) and an upstream one that may
 * still be connecting. Frames keep their order and type, nothing is dropped silently: while the
 * upstream connects, client frames wait in a bounded queue, and a full queue closes the client
 * with 1013 (try again later) instead of discarding frames.
 */
import { log } from "./log";

/** Largest single frame accepted in either direction on the gateway socket (1 MiB). */
export const GATEWAY_MAX_FRAME_BYTES = 1024 * 1024;
/** Frames a client may send before the upstream socket is open. */
export const MAX_QUEUED_FRAMES = 256;
/** Bytes a client may send before the upstream socket is open (4 MiB). */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** RFC 6455 5.5: a close frame's payload is at most 125 bytes, 2 of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

export type ProxyLimits = {
	maxFrameBytes: number;
	maxQueuedFrames: number;
	maxQueuedBytes: number;
};

export const GATEWAY_LIMITS: ProxyLimits = {
	maxFrameBytes: GATEWAY_MAX_FRAME_BYTES,
	maxQueuedFrames: MAX_QUEUED_FRAMES,
	maxQueuedBytes: MAX_QUEUED_BYTES,
};

/** Raised by an upstream connector when the upstream is known to be busy or booting. */
export class UpstreamNotReady extends Error {}

/**
 * A close code that may be put on the wire. 1005, 1006 and 1015 only describe what a peer saw
 * and must never be sent (RFC 6455 7.4.1); 1004 and unassigned codes are reserved too.
 */
export function sendableCloseCode(code: number | undefined): number {
	if (code === undefined || code === 1005) return 1000;
	if (code === 1006 || code === 1015 || code === 1004) return 1011;
	if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)) return code;
	if (code >= 3000 && code <= 4999) return code;
	return 1011;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Cuts a close reason to 123 UTF-8 bytes without splitting a character. */
export function truncateCloseReason(reason: string | undefined): string {
	if (!reason) return "";
	const bytes = encoder.encode(reason);
	if (bytes.byteLength <= MAX_CLOSE_REASON_BYTES) return reason;
	let end = MAX_CLOSE_REASON_BYTES;
	// Step back over continuation bytes (10xxxxxx) to the start of the cut character.
	while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
	return decoder.decode(bytes.subarray(0, end));
}

type Frame = string | ArrayBuffer;

function frameBytes(data: Frame): number {
	return typeof data === "string" ? encoder.encode(data).byteLength : data.byteLength;
}

function isFrame(data: unknown): data is Frame {
	return typeof data === "string" || data instanceof ArrayBuffer;
}

async function frameOf(data: unknown): Promise<Frame> {
	if (isFrame(data)) return data;
	if (data instanceof Blob) return data.arrayBuffer();
	if (ArrayBuffer.isView(data)) {
		return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
	}
	return String(data);
}

/**
 * Wraps a frame handler so frames are handled in arrival order: strings and ArrayBuffers at once,
 * anything needing an async conversion (a Blob) in a chain that later frames wait behind.
 */
function inOrder(
	handle: (frame: Frame) => void,
	unreadable: () => void,
): (event: MessageEvent) => void {
	let pending = 0;
	let chain: Promise<void> = Promise.resolve();
	return (event) => {
		const data: unknown = event.data;
		if (pending === 0 && isFrame(data)) {
			handle(data);
			return;
		}
		pending++;
		chain = chain
			.then(async () => handle(await frameOf(data)))
			// A frame that cannot be read ends the pipe instead of rejecting with no handler.
			.catch(unreadable)
			.finally(() => {
				pending--;
			});
	};
}

function safeClose(socket: WebSocket, code: number, reason: string): void {
	try {
		socket.close(sendableCloseCode(code), truncateCloseReason(reason));
	} catch {
		// Already closed or closing: nothing left to tell this side.
	}
}

/**
 * Pipes `client` (the Worker's end of a WebSocketPair, not yet accepted) to the socket `upstream`
 * resolves to (accepted here). Returns once the pipe is set up; it runs on its own afterwards.
 */
export function pipeWebSockets(
	client: WebSocket,
	upstream: Promise<WebSocket>,
	limits: ProxyLimits,
	route: string,
): void {
	client.binaryType = "arraybuffer";
	client.accept();
	const queue: Frame[] = [];
	let queuedBytes = 0;
	let target: WebSocket | undefined;
	let finished = false;
	// A client close seen while the upstream was still connecting, replayed once it opens.
	let pendingClose: { code: number; reason: string } | undefined;

	const finish = (code: number, reason: string, why: string) => {
		if (finished) return;
		finished = true;
		log(code === 1000 ? "info" : "warn", "websocket closed", { route, code, reason: why });
		safeClose(client, code, reason);
		if (target) safeClose(target, code, reason);
		else pendingClose = { code, reason };
	};

	const forward = (socket: WebSocket, frame: Frame, direction: string) => {
		try {
			socket.send(frame);
		} catch {
			// The socket closed between its last event and this frame: end both sides cleanly.
			finish(1011, `${direction} socket closed while forwarding`, `${direction}_send_failed`);
		}
	};

	client.addEventListener(
		"message",
		inOrder(
			(frame) => {
				const size = frameBytes(frame);
				if (size > limits.maxFrameBytes) {
					finish(
						1009,
						`frame of ${size} bytes exceeds the ${limits.maxFrameBytes}-byte limit`,
						"client_frame_too_large",
					);
					return;
				}
				if (finished) return;
				if (target) {
					forward(target, frame, "upstream");
					return;
				}
				if (
					queue.length + 1 > limits.maxQueuedFrames ||
					queuedBytes + size > limits.maxQueuedBytes
				) {
					finish(1013, "upstream still connecting and the send queue is full; retry", "queue_full");
					return;
				}
				queue.push(frame);
				queuedBytes += size;
			},
			() => finish(1011, "a client frame could not be read", "client_frame_unreadable"),
		),
	);
	client.addEventListener("close", (event) => {
		if (finished) return;
		finished = true;
		safeClose(client, event.code, event.reason);
		if (target) safeClose(target, event.code, event.reason);
		else pendingClose = { code: event.code, reason: event.reason };
	});
	client.addEventListener("error", () => finish(1011, "client socket error", "client_error"));

	upstream.then(
		(socket) => {
			socket.binaryType = "arraybuffer";
			socket.accept();
			target = socket;
			if (pendingClose) {
				safeClose(socket, pendingClose.code, pendingClose.reason);
				return;
			}
			socket.addEventListener(
				"message",
				inOrder(
					(frame) => {
						const size = frameBytes(frame);
						if (size > limits.maxFrameBytes) {
							finish(
								1009,
								`upstream frame of ${size} bytes exceeds the ${limits.maxFrameBytes}-byte limit`,
								"upstream_frame_too_large",
							);
							return;
						}
						if (!finished) forward(client, frame, "client");
					},
					() => finish(1011, "an upstream frame could not be read", "upstream_frame_unreadable"),
				),
			);
			socket.addEventListener("close", (event) => {
				if (finished) return;
				finished = true;
				safeClose(socket, event.code, event.reason);
				safeClose(client, event.code, event.reason);
			});
			socket.addEventListener("error", () =>
				finish(1011, "upstream socket error", "upstream_error"),
			);
			for (const frame of queue.splice(0)) forward(socket, frame, "upstream");
			queuedBytes = 0;
		},
		(error: unknown) => {
			if (error instanceof UpstreamNotReady) {
				finish(1013, "service is starting; retry shortly", "upstream_not_ready");
			} else {
				finish(1011, "upstream connection failed", "upstream_connect_failed");
			}
		},
	);
}
