// The admin page's behaviour: reads status and devices from /api/admin/*, and posts the actions.
// Plain ES module, no build step. Every call is same-origin, so the Access cookie (or the local
// session cookie) goes along and the Worker's Origin check passes.

const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
	const message = $("message");
	message.textContent = text;
	message.classList.toggle("error", isError);
}

async function api(path, method = "GET") {
	const response = await fetch(`/api/admin/${path}`, {
		method,
		headers: { Accept: "application/json" },
		credentials: "same-origin",
	});
	const body = await response.json().catch(() => ({}));
	if (!response.ok) {
		throw new Error(body.error || `Request failed with status ${response.status}.`);
	}
	return body;
}

function age(seconds) {
	if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "never";
	if (seconds < 90) return `${Math.round(seconds)} s ago`;
	if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
	if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
	return `${Math.round(seconds / 86400)} days ago`;
}

function when(value) {
	const date = new Date(typeof value === "number" ? value * 1000 : value);
	return Number.isNaN(date.getTime()) ? "–" : date.toLocaleString();
}

function cell(text) {
	const td = document.createElement("td");
	td.textContent = text ?? "–";
	return td;
}

function actionButton(label, accessibleName, onClick) {
	const button = document.createElement("button");
	button.type = "button";
	button.textContent = label;
	button.setAttribute("aria-label", accessibleName);
	button.addEventListener("click", () => run(button, onClick));
	return button;
}

async function run(button, action) {
	button.disabled = true;
	try {
		await action();
	} catch (error) {
		say(error.message, true);
	} finally {
		button.disabled = false;
	}
}

async function loadStatus() {
	const status = await api("status");
	$("status-phase").textContent = status.phase ?? "unknown";
	const gateway = status.gateway ?? {};
	$("status-gateway").textContent =
		`${gateway.state ?? "unknown"}${gateway.restarts ? `, ${gateway.restarts} restarts` : ""}`;
	$("snapshot-age").textContent = age(status.snapshot?.age_s);
	$("status-model").textContent = describeModel(status.model);
	$("status-version").textContent = status.version ?? "–";
	$("openclaw-version").textContent = status.openclaw_version ?? "unknown";
	$("upgrade-state").textContent = describeUpgrade(status.upgrade);
	showSecurity(status.security);
}

/** The upgrade row: the snapshots `ops upgrade` kept, as the runtime read them at its boot. */
function describeUpgrade(upgrade) {
	if (upgrade && typeof upgrade.message === "string") return upgrade.message;
	return "unknown (this runtime does not report it)";
}

const SEVERITY_LABEL = { critical: "Critical", warn: "Warning", info: "Info" };

/** OpenClaw's own security audit, as the runtime keeps it (every text set as text, never HTML). */
function showSecurity(security) {
	const summary = $("security-summary");
	const state = $("security-state");
	const list = $("security-findings");
	if (!security || typeof security !== "object") {
		summary.className = "pill";
		summary.textContent = "unavailable";
		state.textContent = "This runtime does not report OpenClaw's security audit.";
		list.replaceChildren();
		return;
	}
	const counts = security.counts ?? {};
	const findings = Array.isArray(security.findings) ? security.findings : [];
	if (counts.critical) {
		summary.className = "pill critical";
		summary.textContent = `${counts.critical} critical`;
	} else if (counts.warn) {
		summary.className = "pill warn";
		summary.textContent = `${counts.warn} warning${counts.warn === 1 ? "" : "s"}`;
	} else if (security.state === "done") {
		summary.className = "pill ok";
		summary.textContent = "no warnings";
	} else {
		summary.className = "pill";
		summary.textContent = security.state ?? "unknown";
	}
	const checked = security.checked_at ? `Last audit ${when(security.checked_at)}` : "No audit yet";
	state.textContent =
		{
			pending: "The audit runs once the gateway is ready.",
			running: `${checked}; auditing again now…`,
			done: `${checked}, by OpenClaw's own openclaw security audit.`,
			failed: `${checked}; the latest run did not complete (see below).`,
		}[security.state] ?? checked;
	list.replaceChildren(...findings.map(renderFinding));
}

function renderFinding(finding) {
	const severity = ["critical", "warn", "info"].includes(finding.severity)
		? finding.severity
		: "info";
	const li = document.createElement("li");
	li.className = `finding ${severity}`;
	li.dataset.checkId = finding.id ?? "";
	const head = document.createElement("div");
	head.className = "head";
	const pill = document.createElement("span");
	pill.className = `pill ${severity}`;
	pill.textContent = SEVERITY_LABEL[severity];
	const title = document.createElement("span");
	title.className = "title";
	title.textContent = finding.title ?? finding.id ?? "Finding";
	const id = document.createElement("span");
	id.className = "id";
	id.textContent = finding.id ?? "";
	head.append(pill, title, id);
	li.append(head);
	if (finding.detail) {
		const detail = document.createElement("p");
		detail.className = "detail";
		detail.textContent = finding.detail;
		li.append(detail);
	}
	if (finding.fix) {
		const fix = document.createElement("p");
		fix.className = "fix";
		fix.textContent = finding.fix;
		li.append(fix);
	}
	return li;
}

/** The model row: which model answers, or which setting takes the missing key. */
function describeModel(model) {
	if (!model) return "–";
	const name = model.primary ?? "OpenClaw's default model";
	if (model.key) {
		const fallbacks = model.fallbacks?.length ? `, then ${model.fallbacks.join(", ")}` : "";
		return `${name}${fallbacks}`;
	}
	return (
		`${name}: no provider key, so chat cannot answer. Deployed: ` +
		"pulumi config set --secret anthropicApiKey (or openaiApiKey), then pulumi up. " +
		"Local: export ANTHROPIC_API_KEY (or OPENAI_API_KEY) and restart make dev."
	);
}

function fillTable(kind, rows, render) {
	const list = $(`${kind}-list`);
	list.replaceChildren(...rows.map(render));
	$(`${kind}-table`).hidden = rows.length === 0;
	$(`${kind}-empty`).hidden = rows.length !== 0;
}

async function loadDevices() {
	const devices = await api("devices");
	fillTable("pending", devices.pending ?? [], (request) => {
		const name = request.name || request.device_id;
		const tr = document.createElement("tr");
		tr.dataset.requestId = request.request_id;
		const actions = document.createElement("td");
		actions.className = "actions";
		const id = encodeURIComponent(request.request_id);
		actions.append(
			actionButton("Approve", `Approve ${name}`, async () => {
				await api(`devices/pending/${id}/approve`, "POST");
				say(`Approved ${name}.`);
				await refresh();
			}),
			actionButton("Reject", `Reject ${name}`, async () => {
				await api(`devices/pending/${id}/reject`, "POST");
				say(`Rejected ${name}.`);
				await refresh();
			}),
		);
		tr.append(cell(name), cell(request.platform), cell(when(request.created_at)), actions);
		return tr;
	});
	fillTable("paired", devices.paired ?? [], (device) => {
		const name = device.name || device.device_id;
		const tr = document.createElement("tr");
		tr.dataset.deviceId = device.device_id;
		const actions = document.createElement("td");
		actions.className = "actions";
		actions.append(
			actionButton("Revoke", `Revoke ${name}`, async () => {
				if (!window.confirm(`Revoke ${name}? It will have to pair again.`)) return;
				await api(`devices/${encodeURIComponent(device.device_id)}/revoke`, "POST");
				say(`Revoked ${name}.`);
				await refresh();
			}),
		);
		tr.append(
			cell(name),
			cell(device.platform),
			cell((device.roles ?? []).join(", ")),
			cell(when(device.created_at)),
			actions,
		);
		return tr;
	});
}

async function refresh() {
	try {
		await Promise.all([loadStatus(), loadDevices()]);
	} catch (error) {
		say(error.message, true);
	}
}

$("snapshot-now").addEventListener("click", (event) =>
	run(event.currentTarget, async () => {
		const snapshot = await api("snapshots/now", "POST");
		say(
			snapshot.changed
				? `Snapshot ${snapshot.id} written.`
				: "Nothing changed since the last snapshot.",
		);
		await refresh();
	}),
);
$("restart-gateway").addEventListener("click", (event) =>
	run(event.currentTarget, async () => {
		await api("gateway/restart", "POST");
		say("Gateway restarted.");
		await refresh();
	}),
);
$("refresh").addEventListener("click", (event) => run(event.currentTarget, refresh));

refresh();
setInterval(refresh, 15000);
