/// <reference types="vite/client" />
/**
 * The local run's backend stays out of the production path: only the router's backend choice
 * (app.ts, which picks it in local mode) may reach `local-backend.ts`. A helper that production
 * code needs from it belongs in backend.ts.
 */
import { describe, expect, it } from "vitest";

const SOURCES = import.meta.glob<string>("../src/**/*.ts", {
	query: "?raw",
	import: "default",
	eager: true,
});
const LOCAL_BACKEND = "local-backend.ts";
/** The composition root (app.ts) and the entry module that loads it. */
const WIRING = new Set(["app.ts", "index.ts"]);

function moduleName(key: string): string {
	return key.replace(/^\.\.\/src\//, "");
}

/** Relative static, side-effect, re-export and dynamic import specifiers of one module, resolved to module names. */
function importsOf(name: string, source: string): string[] {
	const found: string[] = [];
	const statements = /(?:^|\n)\s*(?:import|export)\s(?:[^;"]*?\sfrom\s*)?"(\.[^"]+)"/g;
	const dynamic = /\bimport\(\s*"(\.[^"]+)"\s*\)/g;
	for (const match of [...source.matchAll(statements), ...source.matchAll(dynamic)]) {
		const specifier = match[1] ?? "";
		const base = name.includes("/") ? name.slice(0, name.lastIndexOf("/") + 1) : "";
		const parts: string[] = [];
		for (const part of `${base}${specifier}`.split("/")) {
			if (part === "..") parts.pop();
			else if (part !== ".") parts.push(part);
		}
		found.push(`${parts.join("/")}.ts`);
	}
	return found;
}

const GRAPH = new Map(
	Object.entries(SOURCES).map(([key, source]) => [
		moduleName(key),
		importsOf(moduleName(key), source),
	]),
);

function reachable(from: string): Set<string> {
	const seen = new Set<string>();
	const queue = [from];
	for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
		for (const target of GRAPH.get(next) ?? []) {
			if (!seen.has(target)) {
				seen.add(target);
				queue.push(target);
			}
		}
	}
	return seen;
}

describe("module graph", () => {
	it("reads every source module and resolves every relative import to one of them", () => {
		expect(GRAPH.size).toBeGreaterThan(10);
		for (const name of ["app.ts", "sandbox.ts", "scheduled.ts", "backend.ts", LOCAL_BACKEND]) {
			expect(GRAPH.has(name), name).toBe(true);
		}
		for (const [name, targets] of GRAPH) {
			for (const target of targets) expect(GRAPH.has(target), `${name} -> ${target}`).toBe(true);
		}
		expect(GRAPH.get("app.ts")).toContain(LOCAL_BACKEND);
	});

	it("reaches local-backend.ts only through the router's backend choice", () => {
		const offenders = [...GRAPH.keys()].filter(
			(name) => !WIRING.has(name) && name !== LOCAL_BACKEND && reachable(name).has(LOCAL_BACKEND),
		);
		expect(offenders).toEqual([]);
	});
});
