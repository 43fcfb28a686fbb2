"""Smoke test of a deployed stack: public health, Access in front of the admin paths, the CDP
route closed without its secret, and (with an Access service token) a running gateway with a
recent snapshot and no critical finding in OpenClaw's own security audit.

Refusals are what prove the protection: an admin path must answer 401/403 or a redirect to the
team's `*.cloudflareaccess.com` login, never 200. Redirects are not followed, so a login page
can never be mistaken for the admin UI.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .context import Commands, Deps, add_stack_options, stack_outputs
from .errors import Console, OpsError
from .outputs import ACCESS_TEAM_DOMAIN, SERVICE_TOKEN_ID, SERVICE_TOKEN_SECRET

# Access covers /_admin/*, /api/* and /debug/* (the Worker checks the Access JWT again).
ADMIN_PATHS = ("/_admin/", "/api/admin/status", "/debug/config")
STATUS_PATH = "/api/admin/status"
CDP_PATH = "/cdp"
REDIRECTS = (301, 302, 303, 307, 308)
ACCESS_SUFFIX = ".cloudflareaccess.com"


@dataclass(frozen=True)
class ServiceToken:
    client_id: str
    client_secret: str

    def headers(self) -> dict[str, str]:
        return {
            "CF-Access-Client-Id": self.client_id,
            "CF-Access-Client-Secret": self.client_secret,
        }


@dataclass(frozen=True)
class SmokeTarget:
    url: str
    team_domain: str | None
    service_token: ServiceToken | None
    max_snapshot_age_s: float
    wait_s: float
    poll_s: float = 2.0


class CheckFailed(Exception):
    pass


def _get(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    try:
        return client.get(url, headers=headers)
    except httpx.TimeoutException:
        raise CheckFailed(
            f"{url} did not answer in time: the Worker or its container is not responding; "
            "check `wrangler tail` or the Worker's logs in the dashboard"
        ) from None
    except httpx.HTTPError as exc:
        raise CheckFailed(
            f"cannot reach {url} ({type(exc).__name__}): check the stack's `url` output and that "
            "the Worker is deployed (`pulumi up`)"
        ) from None


def check_health(client: httpx.Client, target: SmokeTarget) -> str:
    url = f"{target.url}/healthz"
    response = _get(client, url)
    if response.status_code != 200:
        raise CheckFailed(f"{url} answered {response.status_code}, expected 200")
    try:
        body = response.json()
    except ValueError:
        raise CheckFailed(
            f"{url} did not answer JSON: is the hostname serving this Worker?"
        ) from None
    if not isinstance(body, dict) or body.get("ok") is not True:
        raise CheckFailed(f"{url} answered without ok=true")
    return "200 ok"


def check_refused_without_access(client: httpx.Client, target: SmokeTarget, path: str) -> str:
    url = f"{target.url}{path}"
    response = _get(client, url)
    status = response.status_code
    if status in (401, 403):
        return f"refused with {status}"
    if status in REDIRECTS:
        location = response.headers.get("location", "")
        host = (urlsplit(location).hostname or "").lower()
        expected = (target.team_domain or "").lower()
        if host.endswith(ACCESS_SUFFIX) and (not expected or host == expected):
            return f"redirected to Access ({host})"
        raise CheckFailed(
            f"{url} redirected to {host or location!r}, not to the Access team domain "
            f"{expected or '*' + ACCESS_SUFFIX}: check the Access application's domain and paths"
        )
    if status == 200:
        raise CheckFailed(
            f"{url} answered 200 without Access credentials: the admin path is PUBLIC. Check that "
            "the Access application covers it (`pulumi up`) before using this deployment"
        )
    raise CheckFailed(f"{url} answered {status}; expected 401/403 or a redirect to Access")


def check_cdp_refused(client: httpx.Client, target: SmokeTarget) -> str:
    url = f"{target.url}{CDP_PATH}"
    response = _get(client, url)
    if response.status_code in (401, 403):
        return f"refused with {response.status_code}"
    raise CheckFailed(
        f"{url} answered {response.status_code} without the CDP secret; expected 401/403: "
        "the browser route must check MOLT_CDP_SECRET before anything else"
    )


def _status(client: httpx.Client, target: SmokeTarget, token: ServiceToken) -> dict[str, Any]:
    url = f"{target.url}{STATUS_PATH}"
    response = _get(client, url, headers=token.headers())
    if response.status_code in REDIRECTS or response.status_code in (401, 403):
        raise CheckFailed(
            f"{url} refused the service token ({response.status_code}): the token is expired or "
            "not allowed by the Access policy; re-run `pulumi up` with accessServiceToken=true"
        )
    if response.status_code == 503:
        # The Worker answers 503 {error, phase} while the sandbox boots: not ready yet.
        try:
            booting = response.json()
        except ValueError:
            booting = {}
        phase = booting.get("phase", "booting") if isinstance(booting, dict) else "booting"
        return {"phase": phase}
    if response.status_code != 200:
        raise CheckFailed(f"{url} answered {response.status_code} with the service token")
    try:
        body = response.json()
    except ValueError:
        raise CheckFailed(f"{url} did not answer JSON") from None
    if not isinstance(body, dict):
        raise CheckFailed(f"{url} did not answer a JSON object")
    return body


def _describe_status(body: dict[str, Any], max_age_s: float) -> tuple[bool, str]:
    gateway = body.get("gateway")
    snapshot = body.get("snapshot")
    state = gateway.get("state") if isinstance(gateway, dict) else None
    age = snapshot.get("age_s") if isinstance(snapshot, dict) else None
    pending = snapshot.get("pending") is True if isinstance(snapshot, dict) else False
    problems = []
    # The runtime calls a gateway that is up and answering its health check "ready".
    if body.get("phase") != "ready" or state != "ready":
        problems.append(f"phase={body.get('phase')!r} gateway={state!r}")
    if not isinstance(age, int | float) or isinstance(age, bool):
        problems.append("no snapshot yet")
    elif pending and age > max_age_s:
        # An idle agent writes nothing, so an old snapshot alone is fine; unsaved changes that
        # old mean snapshots are failing.
        problems.append(f"changes unsaved for a snapshot {age:.0f}s old (limit {max_age_s:.0f}s)")
    if problems:
        return False, ", ".join(problems)
    saved = "changes pending" if pending else "nothing unsaved"
    return True, f"gateway running, last snapshot {age:.0f}s old, {saved}"


def _describe_security(body: dict[str, Any]) -> tuple[bool | None, str]:
    """(None while the audit has not finished, else whether it passed, and what it found)."""
    security = body.get("security")
    if not isinstance(security, dict):
        return False, (
            "the runtime reports no security audit: the container runs a runtime older than this "
            "checkout; deploy it with `pulumi up`"
        )
    state = security.get("state")
    if state in ("pending", "running"):
        return None, f"OpenClaw's security audit has not finished (state {state!r})"
    findings = security.get("findings")
    if state not in ("done", "failed") or not isinstance(findings, list):
        return False, f"the runtime's security audit status is not understood (state {state!r})"
    critical = [f for f in findings if isinstance(f, dict) and f.get("severity") == "critical"]
    if critical:
        lines = "; ".join(
            f"{_short(f.get('title'))} [{_short(f.get('id'))}]: fix: {_short(f.get('fix'))}"
            for f in critical
        )
        return False, (
            f"OpenClaw's security audit reports {len(critical)} critical finding(s): {lines}. "
            "Change the stack's config accordingly (the admin page lists every finding) and "
            "`pulumi up`"
        )
    warned = sum(1 for f in findings if isinstance(f, dict) and f.get("severity") == "warn")
    note = " (the last audit did not complete: see the admin page)" if state == "failed" else ""
    return True, f"no critical findings, {warned} warning(s){note}"


def _short(value: Any, limit: int = 240) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_status(
    client: httpx.Client,
    target: SmokeTarget,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    if target.service_token is None:
        raise CheckFailed(
            "no Access service token: set `pulumi config set accessServiceToken true` and "
            "`pulumi up` (or set CF_ACCESS_CLIENT_ID / CF_ACCESS_CLIENT_SECRET), or pass "
            "--no-status"
        )
    deadline = clock() + target.wait_s
    while True:
        ok, detail = _describe_status(
            _status(client, target, target.service_token), target.max_snapshot_age_s
        )
        if ok:
            return detail
        if clock() >= deadline:
            raise CheckFailed(f"admin status after {target.wait_s:.0f}s: {detail}")
        # A sleeping container wakes on the first request; give it time to restore and start.
        sleep(min(target.poll_s, max(0.05, deadline - clock())))


def check_security(
    client: httpx.Client,
    target: SmokeTarget,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """OpenClaw's own security audit, as the runtime reports it: no critical finding."""
    if target.service_token is None:
        raise CheckFailed("no Access service token (see the status check), or pass --no-status")
    deadline = clock() + target.wait_s
    while True:
        body = _status(client, target, target.service_token)
        if body.get("phase") not in ("ready", "degraded"):
            # The audit runs once the gateway is ready.
            passed, detail = None, f"the sandbox is not ready (phase {body.get('phase')!r})"
        else:
            passed, detail = _describe_security(body)
        if passed is True:
            return detail
        if passed is False:
            raise CheckFailed(detail)
        if clock() >= deadline:
            raise CheckFailed(f"after {target.wait_s:.0f}s: {detail}")
        sleep(min(target.poll_s, max(0.05, deadline - clock())))


def run_smoke(
    target: SmokeTarget,
    console: Console,
    *,
    with_status: bool = True,
    timeout_s: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """Run every check, report each, and return whether all passed."""
    checks: list[tuple[str, Callable[[httpx.Client], str]]] = [
        ("healthz", lambda c: check_health(c, target)),
        *[
            (f"{path} without Access", lambda c, p=path: check_refused_without_access(c, target, p))
            for path in ADMIN_PATHS
        ],
        ("/cdp without secret", lambda c: check_cdp_refused(c, target)),
    ]
    if with_status:
        checks.append(("admin status with service token", lambda c: check_status(c, target)))
        checks.append(("security audit", lambda c: check_security(c, target)))
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
    failed = 0
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=transport) as client:
        for name, check in checks:
            try:
                detail = check(client)
            except CheckFailed as exc:
                failed += 1
                console.print(f"FAIL {name}: {exc}")
            else:
                console.print(f"ok   {name}: {detail}")
    console.print(f"smoke: {len(checks)} checks, {failed} failed")
    return failed == 0


def service_token_from(client_id: str | None, client_secret: str | None) -> ServiceToken | None:
    if client_id and client_secret:
        return ServiceToken(client_id, client_secret)
    if client_id or client_secret:
        raise OpsError(
            "only one half of the Access service token is set: set both the client id and the "
            "client secret (stack outputs or CF_ACCESS_CLIENT_ID / CF_ACCESS_CLIENT_SECRET)."
        )
    return None


# --- command line ----------------------------------------------------------------------------


def cmd_smoke(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    outputs = stack_outputs(args, deps, console)
    client_id = outputs.optional_text(SERVICE_TOKEN_ID, secret=True) or deps.env.get(
        "CF_ACCESS_CLIENT_ID"
    )
    client_secret = outputs.optional_text(SERVICE_TOKEN_SECRET, secret=True) or deps.env.get(
        "CF_ACCESS_CLIENT_SECRET"
    )
    console.redact.add(client_id, client_secret)
    target = SmokeTarget(
        url=outputs.url(),
        team_domain=outputs.optional_text(ACCESS_TEAM_DOMAIN),
        service_token=service_token_from(client_id, client_secret),
        max_snapshot_age_s=args.max_snapshot_age,
        wait_s=args.wait,
        poll_s=args.poll_interval,
    )
    ok = run_smoke(
        target,
        console,
        with_status=not args.no_status,
        timeout_s=args.timeout,
        transport=deps.http_transport,
    )
    return 0 if ok else 1


def register(commands: Commands) -> None:
    smoke = commands.add_parser(
        "smoke",
        help="check a deployed stack: health, Access in front of admin paths, running gateway",
        description="Check a deployed stack from outside: /healthz answers, /_admin/ and "
        "/api/admin/* are refused without Access, /cdp is refused without its secret, and with "
        "an Access service token the admin status shows a running gateway and a recent snapshot.",
    )
    add_stack_options(smoke, outputs=True)
    smoke.add_argument(
        "--no-status", action="store_true", help="skip the service-token status check"
    )
    smoke.add_argument(
        "--max-snapshot-age",
        type=float,
        default=86_400.0,
        metavar="SECONDS",
        help="longest acceptable age of a snapshot while changes are unsaved (default: 86400)",
    )
    smoke.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for a waking container to report ready (default: 120)",
    )
    smoke.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="pause between status polls while waiting (default: 2)",
    )
    smoke.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request")
    smoke.set_defaults(handler=cmd_smoke)
