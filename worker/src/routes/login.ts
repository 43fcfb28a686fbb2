/**
 * `/_admin/login`, the local run only: a form that trades LOCAL_ADMIN_TOKEN for an HttpOnly,
 * SameSite=Strict session cookie, so the admin page works in a plain browser without Access.
 */
import { secretEquals } from "../compare";
import { errorResponse, htmlResponse } from "../http";
import { type LocalAdmin, sessionCookieHeader, sessionCookieValue } from "../local";
import { log } from "../log";
import { sameOrigin } from "./admin";

const MAX_FORM_BYTES = 4096;

const FORM = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Sign in: local admin</title>
<link rel="stylesheet" href="/_admin/admin.css">
</head>
<body>
<header class="topbar">
<div class="mark" aria-hidden="true">M</div>
<h1>Agent admin</h1>
</header>
<main>
<section class="card signin">
<h1>Local admin sign-in</h1>
<p class="muted">Enter the admin token that <code>make dev</code> stored in <code>.cache/local/admin-token</code>.</p>
<form method="post" action="/_admin/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button id="sign-in" class="primary" type="submit">Sign in</button>
</form>
</section>
</main>
</body>
</html>
`;

export async function loginRoute(request: Request, config: LocalAdmin): Promise<Response> {
	if (request.method === "GET") return htmlResponse(FORM);
	if (request.method !== "POST")
		return errorResponse(405, "Use GET or POST.", { Allow: "GET, POST" });
	if (!sameOrigin(request))
		return errorResponse(403, "Cross-origin sign-in refused: use the form on this host.");
	if (!request.headers.get("Content-Type")?.startsWith("application/x-www-form-urlencoded")) {
		return errorResponse(415, "Send the sign-in form as application/x-www-form-urlencoded.");
	}
	const body = await request.arrayBuffer();
	if (body.byteLength > MAX_FORM_BYTES) return errorResponse(413, "The sign-in form is too large.");
	const token = new URLSearchParams(new TextDecoder().decode(body)).get("token") ?? undefined;
	if (!token || !(await secretEquals(token, config.adminToken))) {
		log("warn", "local sign-in refused", { route: "login" });
		return htmlResponse(
			FORM.replace(
				"<form",
				'<p role="alert" id="login-error" class="error">Wrong token.</p>\n<form',
			),
			401,
		);
	}
	const url = new URL(request.url);
	return new Response(null, {
		status: 303,
		headers: {
			Location: "/_admin/",
			"Set-Cookie": sessionCookieHeader(await sessionCookieValue(config.adminToken), url),
			"Cache-Control": "no-store",
		},
	});
}
