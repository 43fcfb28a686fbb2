/** The local run's backend: the runtime, the gateway and a Chromium, all on loopback. */
import type { FetchFn } from "./access";
import {
	type Backend,
	type BootState,
	type BrowserSource,
	headersForGateway,
	isServingPhase,
	phaseOf,
	type RunningState,
	socketFrom,
} from "./backend";
import { isLoopbackHost, type LocalConfig } from "./local";
import { UpstreamNotReady } from "./wsproxy";

const HEALTH_TIMEOUT_MS = 2_000;

function targetUrl(base: URL, incoming: URL): URL {
	const url = new URL(base.href);
	url.pathname = incoming.pathname;
	url.search = incoming.search;
	return url;
}

export class LocalBackend implements Backend {
	constructor(
		private readonly config: LocalConfig,
		private readonly fetchFn: FetchFn,
	) {}

	async prepare(): Promise<BootState> {
		const url = new URL("/healthz", this.config.control);
		let response: Response;
		try {
			response = await this.fetchFn(url, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
		} catch {
			return { ready: false, phase: "runtime unreachable" };
		}
		const body = await response.json().catch(() => undefined);
		const phase = phaseOf(body);
		if (response.ok && isServingPhase(phase)) return { ready: true };
		return { ready: false, phase: phase ?? `runtime answered ${response.status}` };
	}

	async gatewayFetch(request: Request): Promise<Response> {
		const url = targetUrl(this.config.gateway, new URL(request.url));
		return this.fetchFn(
			new Request(url, {
				method: request.method,
				headers: headersForGateway(request.headers),
				body: request.body,
				redirect: "manual",
			}),
		);
	}

	async gatewaySocket(request: Request): Promise<WebSocket> {
		const url = targetUrl(this.config.gateway, new URL(request.url));
		const headers = headersForGateway(request.headers);
		headers.set("Upgrade", "websocket");
		const response = await this.fetchFn(url, { headers });
		if (response.status === 503) throw new UpstreamNotReady("gateway not ready");
		return socketFrom(response, "the local gateway");
	}

	/** Locally nothing can be started from here: "running" means the runtime answers. */
	async runningState(): Promise<RunningState> {
		let response: Response;
		try {
			response = await this.fetchFn(new URL("/healthz", this.config.control), {
				signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
			});
		} catch {
			return { running: false, status: "unreachable" };
		}
		const phase = phaseOf(await response.json().catch(() => undefined));
		return { running: true, status: phase ?? `answered ${response.status}` };
	}

	controlIfRunning(method: "GET" | "POST", path: string, token: string): Promise<Response> {
		return this.control(method, path, token);
	}

	async control(method: "GET" | "POST", path: string, token: string): Promise<Response> {
		return this.fetchFn(new URL(path, this.config.control), {
			method,
			headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
			redirect: "manual",
		});
	}
}

/** A local Chromium started with --remote-debugging-port, found through its `/json/version`. */
export class LocalChromium implements BrowserSource {
	constructor(
		private readonly base: URL,
		private readonly fetchFn: FetchFn,
	) {}

	async open(): Promise<WebSocket> {
		const version = await this.fetchFn(new URL("/json/version", this.base), {
			signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
		});
		if (!version.ok) throw new Error(`local Chromium answered ${version.status} on /json/version`);
		const body = (await version.json()) as { webSocketDebuggerUrl?: unknown };
		if (typeof body.webSocketDebuggerUrl !== "string") {
			throw new Error("local Chromium's /json/version has no webSocketDebuggerUrl");
		}
		const socketUrl = new URL(body.webSocketDebuggerUrl);
		// The debugger URL comes from the browser: hold it to the same loopback rule as the config.
		if (!isLoopbackHost(socketUrl.hostname)) {
			throw new Error("local Chromium advertised a non-loopback debugger URL");
		}
		socketUrl.protocol = socketUrl.protocol === "wss:" ? "https:" : "http:";
		const response = await this.fetchFn(socketUrl, { headers: { Upgrade: "websocket" } });
		return socketFrom(response, "the local Chromium");
	}
}
