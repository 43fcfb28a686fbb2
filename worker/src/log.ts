/**
 * The Worker's only way to write logs. Callers pass named fields; only the names below are ever
 * written and only as short scalars, so a secret cannot reach the log by being put in an object,
 * a URL with a query string or an error message from a library.
 */
const ALLOWED_FIELDS = new Set([
	"route",
	"method",
	"path",
	"status",
	"reason",
	"code",
	"phase",
	"ms",
	"bytes",
	"queued",
	"direction",
	"mode",
	"identity",
	"action",
	"upstream_status",
]);

const MAX_VALUE_LENGTH = 200;

export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;
export type LogLevel = "info" | "warn" | "error";

function clean(value: LogValue): string | number | boolean | null {
	if (value === undefined || value === null) return null;
	if (typeof value === "number" || typeof value === "boolean") return value;
	// Keep only printable ASCII so a field cannot forge extra log lines.
	const printable = value.replace(/[^\x20-\x7e]/g, "?");
	return printable.length > MAX_VALUE_LENGTH
		? `${printable.slice(0, MAX_VALUE_LENGTH)}...`
		: printable;
}

export function log(level: LogLevel, event: string, fields: LogFields = {}): void {
	const line: Record<string, string | number | boolean | null> = { level, event: clean(event) };
	for (const [name, value] of Object.entries(fields)) {
		if (ALLOWED_FIELDS.has(name)) line[name] = clean(value);
	}
	const text = JSON.stringify(line);
	if (level === "error") console.error(text);
	else if (level === "warn") console.warn(text);
	else console.log(text);
}
