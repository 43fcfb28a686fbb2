/** Shared test doubles: a scripted backend, a browser source, Access keys and a certs endpoint. */
import { env as baseEnv } from "cloudflare:workers";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { createHandler, type Deps } from "../src/app";
import type { Backend, BootState, BrowserSource, RunningState } from "../src/backend";
import type { AppEnv } from "../src/env";

/** Every secret value a test configures; the log guard (setup.ts) asserts none reaches a log. */
export const SECRETS = {
	OPENCLAW_GATEWAY_TOKEN: "gw-token-7f3a9c1e5b2d4f6a8c0e",
	MOLT_CONTROL_SECRET: "control-secret-0123456789abcdef0123456789abcdef",
	MOLT_CDP_SECRET: "cdp-secret-9e8d7c6b5a4f3e2d1c0b",
	MOLT_SNAPSHOT_KEY: "c25hcHNob3Qta2V5LXRoaXJ0eS10d28tYnl0ZXMtISE=",
	R2_ACCESS_KEY_ID: "r2-key-id-5b4a3c2d1e0f",
	R2_SECRET_ACCESS_KEY: "r2-secret-a1b2c3d4e5f6a7b8c9d0",
	ANTHROPIC_API_KEY: "sk-ant-test-3c2b1a0f9e8d7c6b",
	LOCAL_ADMIN_TOKEN: "local-admin-token-4d3c2b1a0f9e",
} as const;

export const AUD = "aud-3b1f0c9e7d5a2c4e6f8a0b1c3d5e7f9a";
export const TEAM = "example-team.cloudflareaccess.com";
export const ORIGIN = "https://agent.example.com";

export function deployedEnv(overrides: Partial<AppEnv> = {}): AppEnv {
	return {
		...(baseEnv as unknown as AppEnv),
		...SECRETS,
		LOCAL_ADMIN_TOKEN: undefined,
		R2_ENDPOINT: "https://account.r2.cloudflarestorage.com",
		R2_BUCKET: "moltworker-test",
		CF_ACCESS_AUD: AUD,
		CF_ACCESS_TEAM_DOMAIN: TEAM,
		SLEEP_AFTER: "10m",
		DEBUG_ROUTES: "false",
		...overrides,
	};
}

export type ControlCall = { method: string; path: string; token: string };

/** A backend whose answers the test scripts and whose calls it records. */
export class FakeBackend implements Backend {
	boot: BootState = { ready: true };
	controlCalls: ControlCall[] = [];
	gatewayRequests: Request[] = [];
	controlAnswer: (call: ControlCall) => Response = () => Response.json({ ok: true });
	/** The upstream end of the last gateway socket, for the test to drive. */
	upstreamPeer: WebSocket | undefined;
	socketRequests: Request[] = [];

	/** What `runningState` reports; `prepareCalls` counts every (would-be) start. */
	running: RunningState = { running: true, status: "healthy" };
	prepareCalls = 0;

	async prepare(): Promise<BootState> {
		this.prepareCalls++;
		return this.boot;
	}
	async runningState(): Promise<RunningState> {
		return this.running;
	}
	async controlIfRunning(
		method: "GET" | "POST",
		path: string,
		token: string,
	): Promise<Response | undefined> {
		if (!this.running.running) return undefined;
		return this.control(method, path, token);
	}
	async gatewayFetch(request: Request): Promise<Response> {
		this.gatewayRequests.push(request);
		return new Response("gateway says hi", {
			status: 200,
			headers: { "Content-Type": "text/plain" },
		});
	}
	async gatewaySocket(request: Request): Promise<WebSocket> {
		this.socketRequests.push(request);
		const pair = new WebSocketPair();
		pair[1].binaryType = "arraybuffer";
		pair[1].accept();
		this.upstreamPeer = pair[1];
		return pair[0];
	}
	async control(method: "GET" | "POST", path: string, token: string): Promise<Response> {
		const call = { method, path, token };
		this.controlCalls.push(call);
		return this.controlAnswer(call);
	}
}

export class FakeBrowser implements BrowserSource {
	opened = 0;
	peer: WebSocket | undefined;
	async open(): Promise<WebSocket> {
		this.opened++;
		const pair = new WebSocketPair();
		pair[1].binaryType = "arraybuffer";
		pair[1].accept();
		this.peer = pair[1];
		return pair[0];
	}
}

export type AccessKit = {
	jwks: { keys: JWK[] };
	sign: (claims?: Record<string, unknown>, options?: SignOptions) => Promise<string>;
	signWithPrevious: (claims?: Record<string, unknown>) => Promise<string>;
	publicPem: string;
	currentPrivate: CryptoKey;
};

type SignOptions = {
	kid?: string;
	issuer?: string;
	audience?: string;
	expiresIn?: number | null;
	notBefore?: number;
};

async function spki(key: CryptoKey): Promise<string> {
	const der = (await crypto.subtle.exportKey("spki", key)) as ArrayBuffer;
	return btoa(String.fromCharCode(...new Uint8Array(der)));
}

/** Two real RS256 key pairs, as Access holds during a key rotation. */
export async function accessKit(): Promise<AccessKit> {
	const current = await generateKeyPair("RS256", { extractable: true });
	const previous = await generateKeyPair("RS256", { extractable: true });
	const currentJwk = {
		...(await exportJWK(current.publicKey)),
		kid: "kid-current",
		alg: "RS256",
		use: "sig",
	};
	const previousJwk = {
		...(await exportJWK(previous.publicKey)),
		kid: "kid-previous",
		alg: "RS256",
		use: "sig",
	};
	const signWith =
		(key: CryptoKey, defaultKid: string) =>
		async (claims: Record<string, unknown> = {}, options: SignOptions = {}) => {
			const now = Math.floor(Date.now() / 1000);
			const jwt = new SignJWT({ email: "admin@example.com", ...claims })
				.setProtectedHeader({ alg: "RS256", kid: options.kid ?? defaultKid })
				.setIssuer(options.issuer ?? `https://${TEAM}`)
				.setAudience(options.audience ?? AUD)
				.setIssuedAt(now);
			if (options.expiresIn !== null) jwt.setExpirationTime(now + (options.expiresIn ?? 300));
			if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore);
			return jwt.sign(key);
		};
	return {
		jwks: { keys: [currentJwk, previousJwk] },
		sign: signWith(current.privateKey, "kid-current"),
		signWithPrevious: (claims) => signWith(previous.privateKey, "kid-previous")(claims),
		publicPem: await spki(current.publicKey),
		currentPrivate: current.privateKey,
	};
}

/** A certs endpoint for the team: counts fetches, can be switched off. */
export function certsEndpoint(jwks: { keys: JWK[] }) {
	const state = { fetches: 0, down: false, otherFetches: 0 };
	const fetchFn: Deps["fetch"] = async (input) => {
		const url = new URL(input instanceof Request ? input.url : String(input));
		if (url.href !== `https://${TEAM}/cdn-cgi/access/certs`) {
			state.otherFetches++;
			return new Response("unexpected", { status: 599 });
		}
		state.fetches++;
		if (state.down) throw new TypeError("network connection lost");
		return Response.json(jwks);
	};
	return { state, fetchFn };
}

export function handlerWith(deps: Partial<Deps> & { fetch?: Deps["fetch"] }) {
	const handle = createHandler({
		fetch: deps.fetch ?? (async () => new Response("no network in tests", { status: 599 })),
		...deps,
	});
	return (request: Request, env: AppEnv) => handle(request, env);
}

/** Waits for the next message on a socket (accepted by the caller). */
export function nextMessage(socket: WebSocket): Promise<string | ArrayBuffer> {
	return new Promise((resolve) => {
		socket.addEventListener("message", (event) => resolve(event.data as string | ArrayBuffer), {
			once: true,
		});
	});
}

export function nextClose(socket: WebSocket): Promise<{ code: number; reason: string }> {
	return new Promise((resolve) => {
		socket.addEventListener(
			"close",
			(event) => resolve({ code: event.code, reason: event.reason }),
			{
				once: true,
			},
		);
	});
}

/** Collects `count` messages from a socket. */
export function messages(socket: WebSocket, count: number): Promise<(string | ArrayBuffer)[]> {
	return new Promise((resolve) => {
		const seen: (string | ArrayBuffer)[] = [];
		const onMessage = (event: MessageEvent) => {
			seen.push(event.data as string | ArrayBuffer);
			if (seen.length === count) {
				socket.removeEventListener("message", onMessage);
				resolve(seen);
			}
		};
		socket.addEventListener("message", onMessage);
	});
}
