/**
 * The container sandbox: one Durable Object (a fixed name, so one container per deployment)
 * running the image with the runtime and the OpenClaw gateway. The Worker talks to it only
 * through `ContainerBackend`.
 */
import { Container, switchPort } from "@cloudflare/containers";
import {
	type Backend,
	BackendUnavailable,
	type BootState,
	headersForGateway,
	isServingPhase,
	phaseOf,
	type RunningState,
	socketFrom,
} from "./backend";
import { BrowserSessionKeeper, type BrowserSessions } from "./browser-rendering";
import { containerEnv, parseSleepAfter } from "./container-env";
import { type AppEnv, CONTROL_PORT, GATEWAY_PORT } from "./env";
import { log } from "./log";
import { UpstreamNotReady } from "./wsproxy";

export const SANDBOX_NAME = "moltworker";
/** Restoring a large snapshot can take minutes before the gateway listens. */
const PORT_READY_TIMEOUT_MS = 5 * 60_000;
const INSTANCE_TIMEOUT_MS = 2 * 60_000;
const HEALTH_TIMEOUT_MS = 1_500;
/** The public origin (a bare host name in storage written by earlier versions). */
const HOST_KEY = "publicHost";
/** A snapshot of a large state can take a while; the cron run waits for it, then gives up. */
const CRON_CONTROL_TIMEOUT_MS = 2 * 60_000;
const CONTROL_PATH = /^\/v1\/[a-z][a-z/]{0,63}$/;
const FAILURE_KEY = "lastFailure";
/** After the runtime refused to start, requests get its reason for this long, then it is retried. */
export const FAILURE_HOLD_MS = 60_000;
/**
 * The runtime's exit codes that waiting does not fix (container/sandbox_runtime/__main__.py and
 * supervisor.py): starting the same container again at once would only fail the same way.
 */
export const EXIT_FAILURES: Record<number, string> = {
	2: "The sandbox refused its configuration (the runtime exited with code 2: a required setting is missing or malformed; the container log names it). Fix the Worker's settings with pulumi up; nothing was started, so nothing was lost.",
	3: "The sandbox could not restore its saved state (the runtime exited with code 3: its snapshot store, R2, was unreachable or held no readable snapshot). Nothing was started, so nothing was lost. Check R2 and the Worker's R2_* settings.",
};

/**
 * The runtime's exit when its final snapshot failed (supervisor.py EXIT_CHANGES_LOST): the
 * changes since the last snapshot went with the container. That is an error for the log, but no
 * reason to refuse the next start (the store may be back; if not, the restore exits 3).
 */
export const EXIT_CHANGES_LOST = 4;

export type ExitVerdict = {
	level: "info" | "error";
	/** Requests get `EXIT_FAILURES[code]` for FAILURE_HOLD_MS instead of a new start. */
	hold: boolean;
	action?: "boot_refused" | "changes_lost";
};

/** What a container's exit code means for the log and for the next request. */
export function exitVerdict(code: number): ExitVerdict {
	if (code in EXIT_FAILURES) return { level: "error", hold: true, action: "boot_refused" };
	if (code === EXIT_CHANGES_LOST) return { level: "error", hold: false, action: "changes_lost" };
	return { level: "info", hold: false };
}

type Failure = { code: number; at: number };

/** The exit code in @cloudflare/containers' error for a container that exited by itself. */
export function exitCodeOf(error: unknown): number | undefined {
	const text = error instanceof Error ? error.message : String(error);
	const match = /container exited with unexpected exit code: ?(\d{1,3})\b/i.exec(text);
	return match ? Number(match[1]) : undefined;
}

export class Sandbox extends Container<AppEnv> {
	override defaultPort = GATEWAY_PORT;
	override requiredPorts = [GATEWAY_PORT, CONTROL_PORT];
	override enableInternet = true;
	private readonly neverSleep: boolean;
	private booting: Promise<void> | undefined;
	private keeper: BrowserSessionKeeper | undefined;

	constructor(ctx: ConstructorParameters<typeof Container>[0], env: AppEnv) {
		super(ctx, env);
		const sleep = parseSleepAfter(env.SLEEP_AFTER);
		// An invalid value is reported by the Worker before it ever reaches here; stay conservative.
		this.neverSleep = sleep === "never";
		this.sleepAfter = typeof sleep === "object" && "seconds" in sleep ? sleep.seconds : "10m";
		// The library restarts a stopped container on its own when a request arrives, with
		// `this.envVars`; keep them complete so such a start is configured like ours.
		this.envVars = containerEnv(env, ctx.storage.kv.get<string>(HOST_KEY) ?? "");
	}

	/** RPC from the Worker: start when stopped, and report the boot phase while starting. */
	async prepare(publicOrigin: string): Promise<BootState> {
		const state = await this.getState();
		if (this.ctx.container?.running && state.status === "healthy") return { ready: true };
		const failed = this.ctx.container?.running ? undefined : this.recentFailure();
		if (failed && !this.booting) return { ready: false, phase: "stopped", failure: failed };
		if (!this.booting) {
			this.ctx.storage.kv.put(HOST_KEY, publicOrigin);
			this.envVars = containerEnv(this.env, publicOrigin);
			this.booting = this.startAndWaitForPorts({
				ports: [GATEWAY_PORT, CONTROL_PORT],
				startOptions: { envVars: this.envVars ?? {}, enableInternet: true },
				cancellationOptions: {
					instanceGetTimeoutMS: INSTANCE_TIMEOUT_MS,
					portReadyTimeoutMS: PORT_READY_TIMEOUT_MS,
				},
			})
				.catch((error: unknown) => {
					log("error", "container start failed", {
						reason: error instanceof Error ? error.name : "unknown",
					});
				})
				.finally(() => {
					this.booting = undefined;
				});
			this.ctx.waitUntil(this.booting);
		}
		return { ready: false, phase: await this.runtimePhase() };
	}

	/** RPC from `/cdp`: the deployment's Browser Rendering session (see browser-rendering.ts). */
	async browserSession(): Promise<string> {
		return this.browserSessions().current();
	}

	/** RPC from `/cdp`: a connection to `staleId` failed; returns the session to use instead. */
	async replaceBrowserSession(staleId: string): Promise<string> {
		return this.browserSessions().replace(staleId);
	}

	private browserSessions(): BrowserSessionKeeper {
		this.keeper ??= new BrowserSessionKeeper(this.ctx.storage.kv, this.env.BROWSER);
		return this.keeper;
	}

	/** RPC from the cron job: reads state only; starts nothing, renews nothing. */
	async runningState(): Promise<RunningState> {
		const state = await this.getState();
		return { running: this.ctx.container?.running === true, status: state.status };
	}

	/**
	 * RPC from the cron job: one control API call straight to the container's port. Unlike
	 * `fetch` (the library's `containerFetch`), this neither starts a stopped container nor
	 * renews the activity timeout, so a cron run every few minutes cannot keep the sandbox awake.
	 */
	async controlIfRunning(
		method: "GET" | "POST",
		path: string,
		token: string,
	): Promise<Response | undefined> {
		if (!CONTROL_PATH.test(path)) throw new Error("control path must be /v1/<name>");
		if (!this.ctx.container?.running) return undefined;
		return this.ctx.container.getTcpPort(CONTROL_PORT).fetch(`http://sandbox${path}`, {
			method,
			headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
			signal: AbortSignal.timeout(CRON_CONTROL_TIMEOUT_MS),
		});
	}

	private async runtimePhase(): Promise<string> {
		if (!this.ctx.container?.running) return "starting container";
		try {
			const response = await this.ctx.container
				.getTcpPort(CONTROL_PORT)
				.fetch("http://sandbox/healthz", { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
			const phase = phaseOf(await response.json().catch(() => undefined));
			if (phase && !isServingPhase(phase)) return phase;
			return phase ?? "starting runtime";
		} catch {
			return "starting runtime";
		}
	}

	/** The sentence for the runtime's last refusal to start, while it is recent enough to hold. */
	private recentFailure(): string | undefined {
		const failure = this.ctx.storage.kv.get<Failure>(FAILURE_KEY);
		if (!failure || Date.now() - failure.at >= FAILURE_HOLD_MS) return undefined;
		return EXIT_FAILURES[failure.code];
	}

	override onStart(): void {
		log("info", "container started", { route: "sandbox" });
	}

	override onStop(params: { exitCode: number; reason: string }): void {
		const verdict = exitVerdict(params.exitCode);
		log(verdict.level, "container stopped", {
			route: "sandbox",
			code: params.exitCode,
			reason: params.reason,
			action: verdict.action,
		});
		this.rememberExit(params.exitCode);
	}

	override onError(error: unknown): unknown {
		// A container that exits while its ports are awaited arrives here, not in onStop.
		const code = exitCodeOf(error);
		log("error", "container error", {
			route: "sandbox",
			reason: error instanceof Error ? error.name : "unknown",
			code,
		});
		if (code !== undefined) this.rememberExit(code);
		throw error;
	}

	private rememberExit(code: number): void {
		if (exitVerdict(code).hold) {
			this.ctx.storage.kv.put<Failure>(FAILURE_KEY, { code, at: Date.now() });
		} else {
			this.ctx.storage.kv.delete(FAILURE_KEY);
		}
	}

	override async onActivityExpired(): Promise<void> {
		if (this.neverSleep) {
			this.renewActivityTimeout();
			return;
		}
		await super.onActivityExpired();
	}
}

function sandboxStub(namespace: DurableObjectNamespace<Sandbox>): DurableObjectStub<Sandbox> {
	return namespace.get(namespace.idFromName(SANDBOX_NAME));
}

/** The browser session remembered by the deployment's `Sandbox` object (never starts the container). */
export function sandboxBrowserSessions(
	namespace: DurableObjectNamespace<Sandbox>,
): BrowserSessions {
	const stub = sandboxStub(namespace);
	return {
		// Awaited here so callers get a plain Promise, not the RPC stub's thenable.
		current: async () => await stub.browserSession(),
		replace: async (staleId) => await stub.replaceBrowserSession(staleId),
	};
}

/** The production Backend: requests go to the `Sandbox` Durable Object and on into the container. */
export class ContainerBackend implements Backend {
	private readonly stub: DurableObjectStub<Sandbox>;

	/** `publicOrigin`: the origin of the request that may start the container (see publicOrigin). */
	constructor(
		namespace: DurableObjectNamespace<Sandbox>,
		private readonly publicOrigin: string,
	) {
		this.stub = sandboxStub(namespace);
	}

	async prepare(): Promise<BootState> {
		try {
			return await this.stub.prepare(this.publicOrigin);
		} catch (error) {
			// The library refuses to construct the object when the class has no container attached.
			if (error instanceof Error && error.message.includes("Containers have not been enabled")) {
				throw new BackendUnavailable(
					"The Sandbox Durable Object has no container attached: deploy the Worker with its container application (pulumi up does this).",
				);
			}
			log("error", "sandbox unreachable", {
				route: "sandbox",
				reason: error instanceof Error ? error.name : "unknown",
			});
			throw error;
		}
	}

	async runningState(): Promise<RunningState> {
		return await this.stub.runningState();
	}

	async controlIfRunning(
		method: "GET" | "POST",
		path: string,
		token: string,
	): Promise<Response | undefined> {
		return await this.stub.controlIfRunning(method, path, token);
	}

	gatewayFetch(request: Request): Promise<Response> {
		const forwarded = new Request(request, { headers: headersForGateway(request.headers) });
		return this.stub.fetch(switchPort(forwarded, GATEWAY_PORT));
	}

	async gatewaySocket(request: Request): Promise<WebSocket> {
		const forwarded = new Request(request.url, {
			headers: headersForGateway(request.headers),
		});
		const response = await this.stub.fetch(switchPort(forwarded, GATEWAY_PORT));
		if (response.status === 503) throw new UpstreamNotReady("container not ready");
		return socketFrom(response, "the gateway");
	}

	control(method: "GET" | "POST", path: string, token: string): Promise<Response> {
		const request = new Request(`http://sandbox${path}`, {
			method,
			headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
		});
		return this.stub.fetch(switchPort(request, CONTROL_PORT));
	}
}
