import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "./wrangler.jsonc" },
		}),
	],
	test: {
		include: ["test/**/*.test.ts"],
		setupFiles: ["test/setup.ts"],
		testTimeout: 20_000,
	},
});
