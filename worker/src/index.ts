/** The entrypoint Worker: routes requests (see app.ts), runs the cron job (scheduled.ts) and exports the `Sandbox` Durable Object. */
import { createHandler, type Deps, defaultBackend } from "./app";
import type { AppEnv } from "./env";
import { createScheduled } from "./scheduled";

export { Sandbox } from "./sandbox";

const deps: Deps = { fetch: (input, init) => fetch(input, init) };
const handle = createHandler(deps);
const cron = createScheduled({
	backend: (env, url, local) => defaultBackend(deps, env, url, local),
});

export default {
	fetch(request, env) {
		return handle(request, env);
	},
	async scheduled(_controller, env) {
		await cron(env);
	},
} satisfies ExportedHandler<AppEnv>;
