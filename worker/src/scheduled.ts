/**
 * The cron job (infra/ declares `cronSchedule`, every five minutes by default). It only looks at
 * a sandbox that is already running and never wakes a sleeping one: starting the container here
 * would defeat `sleepAfter` and bill the owner around the clock. While the sandbox runs, it makes
 * sure a long burst of changes (the runtime snapshots after a quiet moment, which a busy agent
 * may never leave) still reaches R2 every few minutes.
 */
import { type Backend, isServingPhase, phaseOf } from "./backend";
import { controlSecretProblem, mintControlToken } from "./control";
import { type AppEnv, isLocalMode, setting } from "./env";
import { type LocalConfig, localConfig } from "./local";
import { type LogLevel, log } from "./log";

/**
 * `CRON_SNAPSHOT_AFTER`: pending changes whose last snapshot is older than this get one from the
 * cron job. Unset means five minutes (infra/wiring.py sets the same default; a test ties them).
 * Under 10 s the cron job would race the runtime's own watcher, which saves a change within a
 * few seconds while the store answers; over a day, a stuck watcher could lose a day of work.
 */
export const CRON_SNAPSHOT_AFTER_DEFAULT = "5m";
export const CRON_SNAPSHOT_AFTER_MIN_S = 10;
export const CRON_SNAPSHOT_AFTER_MAX_S = 24 * 3600;
/** The control token's subject: the runtime's audit log names the cron job as the caller. */
export const CRON_IDENTITY = "cron";

/**
 * A cron run arrives on no host. This loopback placeholder lets the local backend check its own
 * URLs as usual (they must still be loopback); the container backend uses the host only when it
 * starts the container, which the cron job never does.
 */
const CRON_URL = new URL("http://127.0.0.1/");

export type CronOutcome =
	| "not_configured"
	| "state_unavailable"
	| "not_running"
	| "runtime_busy"
	| "control_unreachable"
	| "status_failed"
	| "nothing_pending"
	| "snapshot_recent"
	| "snapshot_requested"
	| "snapshot_failed"
	| "failed";

export type CronReport = {
	outcome: CronOutcome;
	status?: number;
	phase?: string;
	/** What is wrong with the Worker's settings, for `not_configured`. */
	reason?: string;
};

type SnapshotStatus = { phase: string; pending: boolean; ageSeconds: number | null };

/** `CRON_SNAPSHOT_AFTER` in seconds: `<n>s`, `<n>m` or `<n>h`, within the bounds above. */
export function parseCronSnapshotAfter(
	raw: string | undefined,
): { seconds: number } | { error: string } {
	const value = raw?.trim() || CRON_SNAPSHOT_AFTER_DEFAULT;
	const match = /^(\d{1,6})([smh])$/.exec(value);
	if (!match) {
		return {
			error: `CRON_SNAPSHOT_AFTER is "${value.slice(0, 20)}", not a duration: use e.g. 30s, 5m or 1h (unset: ${CRON_SNAPSHOT_AFTER_DEFAULT}).`,
		};
	}
	const seconds = Number(match[1]) * (match[2] === "h" ? 3600 : match[2] === "m" ? 60 : 1);
	if (seconds < CRON_SNAPSHOT_AFTER_MIN_S || seconds > CRON_SNAPSHOT_AFTER_MAX_S) {
		return {
			error: `CRON_SNAPSHOT_AFTER is ${value}: use ${CRON_SNAPSHOT_AFTER_MIN_S}s to 24h (unset: ${CRON_SNAPSHOT_AFTER_DEFAULT}).`,
		};
	}
	return { seconds };
}

/** The parts of `/v1/status` the job reads, or undefined when the answer is not that shape. */
export function snapshotStatus(body: unknown): SnapshotStatus | undefined {
	if (typeof body !== "object" || body === null) return undefined;
	const phase = phaseOf(body);
	const snapshot = (body as { snapshot?: unknown }).snapshot;
	if (phase === undefined || typeof snapshot !== "object" || snapshot === null) return undefined;
	const { pending, age_s: age } = snapshot as { pending?: unknown; age_s?: unknown };
	if (typeof pending !== "boolean") return undefined;
	if (age !== null && (typeof age !== "number" || !Number.isFinite(age) || age < 0)) {
		return undefined;
	}
	return { phase, pending, ageSeconds: age };
}

/** One control call with a fresh token: each token names the cron job and lives one minute. */
async function control(
	backend: Backend,
	method: "GET" | "POST",
	path: string,
	secret: string,
): Promise<Response | undefined | "unreachable"> {
	const token = await mintControlToken(secret, CRON_IDENTITY);
	try {
		return await backend.controlIfRunning(method, path, token);
	} catch {
		return "unreachable";
	}
}

/**
 * One cron run's decision, against any backend; backend failures become outcomes. `staleAfterS`:
 * pending changes get a snapshot once the last one is at least this old.
 */
export async function cronTick(
	backend: Backend,
	controlSecret: string,
	staleAfterS: number,
): Promise<CronReport> {
	let running: boolean;
	try {
		running = (await backend.runningState()).running;
	} catch {
		return { outcome: "state_unavailable" };
	}
	if (!running) return { outcome: "not_running" };
	const statusAnswer = await control(backend, "GET", "/v1/status", controlSecret);
	if (statusAnswer === "unreachable") return { outcome: "control_unreachable" };
	if (statusAnswer === undefined) return { outcome: "not_running" };
	const status = snapshotStatus(await statusAnswer.json().catch(() => undefined));
	if (!statusAnswer.ok || status === undefined) {
		return { outcome: "status_failed", status: statusAnswer.status };
	}
	if (!isServingPhase(status.phase)) return { outcome: "runtime_busy", phase: status.phase };
	if (!status.pending) return { outcome: "nothing_pending", phase: status.phase };
	if (status.ageSeconds !== null && status.ageSeconds < staleAfterS) {
		return { outcome: "snapshot_recent", phase: status.phase };
	}
	const snapshotAnswer = await control(backend, "POST", "/v1/snapshots", controlSecret);
	if (snapshotAnswer === "unreachable") return { outcome: "control_unreachable" };
	if (snapshotAnswer === undefined) return { outcome: "not_running" };
	await snapshotAnswer.body?.cancel();
	return {
		outcome: snapshotAnswer.ok ? "snapshot_requested" : "snapshot_failed",
		status: snapshotAnswer.status,
		phase: status.phase,
	};
}

const QUIET_OUTCOMES = new Set<CronOutcome>([
	"not_running",
	"nothing_pending",
	"snapshot_recent",
	"snapshot_requested",
	"runtime_busy",
]);

export type CronDeps = {
	backend: (env: AppEnv, url: URL, local: LocalConfig | undefined) => Backend;
};

/** The `scheduled` handler: never throws (a thrown cron run only adds noise), logs one line. */
export function createScheduled(deps: CronDeps): (env: AppEnv) => Promise<CronReport> {
	return async (env) => {
		const started = Date.now();
		let report: CronReport;
		try {
			report = await run(env, deps);
		} catch {
			report = { outcome: "failed" };
		}
		const level: LogLevel = QUIET_OUTCOMES.has(report.outcome)
			? "info"
			: report.outcome === "not_configured"
				? "error"
				: "warn";
		log(level, "cron", {
			route: "cron",
			action: report.outcome,
			upstream_status: report.status,
			phase: report.phase,
			reason: report.reason,
			ms: Date.now() - started,
		});
		return report;
	};
}

async function run(env: AppEnv, deps: CronDeps): Promise<CronReport> {
	let local: LocalConfig | undefined;
	if (isLocalMode(env)) {
		const config = localConfig(env, CRON_URL);
		if ("error" in config) return { outcome: "not_configured" };
		local = config;
	}
	const secret = setting(env, "MOLT_CONTROL_SECRET");
	if (!secret || controlSecretProblem(secret)) return { outcome: "not_configured" };
	const staleAfter = parseCronSnapshotAfter(env.CRON_SNAPSHOT_AFTER);
	if ("error" in staleAfter) return { outcome: "not_configured", reason: staleAfter.error };
	return cronTick(deps.backend(env, CRON_URL, local), secret, staleAfter.seconds);
}
