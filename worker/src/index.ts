/** The entrypoint Worker: routes requests (see app.ts) and exports the `Sandbox` Durable Object. */
import { createHandler } from "./app";
import type { AppEnv } from "./env";

export { Sandbox } from "./sandbox";

const handle = createHandler({ fetch: (input, init) => fetch(input, init) });

export default {
	fetch(request, env) {
		return handle(request, env);
	},
} satisfies ExportedHandler<AppEnv>;
