"""A stateful fake of the Cloudflare API on loopback that the real, pinned wrangler accepts.

`CloudflareApiServer` serves `http://127.0.0.1:<port>/client/v4` from a thread. Point wrangler at
it with `CLOUDFLARE_API_BASE_URL=<server.url>`, `CLOUDFLARE_API_TOKEN=<api.token>` and
`CLOUDFLARE_ACCOUNT_ID=<api.account_id>`; point the `cloudflare` SDK at it with
`base_url=server.url`, or keep the SDK in-process with `http_client=api.client()` (an httpx
MockTransport over the same handler, no socket).

What it keeps (`CloudflareApi`): scripts (metadata, modules, migration tag, settings, secrets,
schedules, workers.dev flags), Durable Object namespaces (created by a script upload's
`new_sqlite_classes` / `new_classes` migration), versions and deployments, assets upload sessions,
container applications and rollouts, minted registry credentials, R2 buckets, custom domains,
zones with their Worker routes, permission groups and tokens. Every request is recorded
(`api.requests`); a record's repr redacts secret values so a failing assertion never prints one.

Refusals answered with the API's own codes (sources beside each): 10007 no such Worker, 10061 a
binding to a class no migration created, 100406 a version upload binding a class declared only in
`exports`, 10211 migrations on a version upload, 10079 (HTTP 412) a migration whose `old_tag` is
not the script's current tag, 10074 a migration re-creating an existing class, 401 unknown token,
403 missing permission (code 10000), 429 with Retry-After (`api.fail(...)`). A permission-group
look-up whose name matches nothing answers an empty list, as the API does.

Where the real API's behaviour is not documented the fake accepts what wrangler sends and says
so in a comment marked OPEN QUESTION; it does not invent a rule.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

API = "/client/v4"
NOW = "2026-12-01T00:00:00.000000Z"
REDACTED = "<redacted>"

# Instance types the Containers API knows (wrangler's instance_type enum, SDK
# application_create_params.py: lite, basic, standard-1..4; `dev`/`standard` are older aliases).
INSTANCE_TYPES = {"lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4"}

# Permission names a token can hold; each route needs one. The names the API itself shows are
# in PERMISSION_LABELS (what `infra/` and the doctor name in their errors).
PERMISSION_LABELS = {
    "workers": "Workers Scripts Write",
    "containers": "Containers Write",
    "r2": "Workers R2 Storage Write",
    "access": "Access: Apps and Policies Write",
    "tokens": "API Tokens Write",
    "ai": "AI Gateway Write",
    "zones": "Workers Routes Write",
    "account": "Account Settings Read",
}
ALL_PERMISSIONS = frozenset(PERMISSION_LABELS)

DEFAULT_PERMISSION_GROUPS = (
    "Workers R2 Storage Bucket Item Write",
    "Workers R2 Storage Bucket Item Read",
    "AI Gateway Run",
    "AI Gateway Read",
    "Workers Scripts Write",
    "Containers Write",
)


# --- requests and their record -----------------------------------------------------------------
@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"Part({self.name!r}, {self.content_type}, {len(self.data)} bytes)"


@dataclass
class Recorded:
    """A request as the server saw it. `body` is parsed JSON, a {name: Part} dict for multipart,
    or raw bytes; `metadata` is the parsed `metadata` part of a Worker upload."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0

    @property
    def metadata(self) -> dict[str, Any] | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("metadata"), Part):
            return self.body["metadata"].json()
        return None

    @property
    def mutating(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH", "DELETE"}

    def line(self) -> str:
        query = f"?{urllib.parse.urlencode(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status}"

    def __repr__(self) -> str:
        body = self.body
        if isinstance(body, dict) and "metadata" in body and isinstance(body["metadata"], Part):
            body = {**body, "metadata": redact(body["metadata"].json())}
        else:
            body = redact(body)
        return f"Recorded({self.line()}, body={body!r})"


def redact(value: Any) -> Any:
    """A copy of a request/state value with every secret value replaced (secret_text bindings,
    secret bodies, registry passwords)."""
    if isinstance(value, list):
        return [redact(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    secret_shaped = value.get("type") in {"secret_text", "secret_key"}
    for key, item in value.items():
        if key in {"password", "secret"} or (secret_shaped and key in {"text", "value"}):
            out[key] = REDACTED
        else:
            out[key] = redact(item)
    return out


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    raw: bytes
    body: Any = None


@dataclass
class Response:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.payload).encode()


def ok(result: Any, *, status: int = 200, **extra: Any) -> Response:
    return Response(
        status, {"success": True, "errors": [], "messages": [], "result": result, **extra}
    )


def page(items: list[Any], number: int = 1) -> Response:
    """One page holding every item; a later page is empty (the SDK's paginators ask for the
    next page until one comes back empty)."""
    items = items if number == 1 else []
    info = {
        "page": number,
        "per_page": max(len(items), 20),
        "count": len(items),
        "total_count": len(items),
    }
    return ok(items, result_info=info)


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    payload = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return Response(status, payload, headers or {})


def parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type.startswith("application/json"):
        return json.loads(raw)
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        parts: dict[str, Part] = {}
        for sub in message.iter_parts():
            disposition = sub.get("Content-Disposition", "")
            params = dict(sub.get_params(header="content-disposition") or [])
            name = params.get("name") or disposition
            payload = sub.get_payload(decode=True)
            parts[name] = Part(
                name=name,
                filename=params.get("filename"),
                content_type=sub.get_content_type(),
                data=payload if isinstance(payload, bytes) else b"",
            )
        return parts
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# --- state -------------------------------------------------------------------------------------
@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    code: int
    message: str


@dataclass
class Script:
    name: str
    tag: str
    metadata: dict[str, Any]
    modules: dict[str, Part]
    created_on: str = NOW
    modified_on: str = NOW
    migration_tag: str | None = None
    etag: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, str]] = field(default_factory=list)
    subdomain: dict[str, bool] = field(
        default_factory=lambda: {"enabled": False, "previews_enabled": False}
    )
    assets: dict[str, Any] | None = None  # the manifest the upload's jwt completed
    deployments: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Script({self.name!r}, migration_tag={self.migration_tag!r}, "
            f"secrets={sorted(self.secrets)}, metadata={redact(self.metadata)!r})"
        )


@dataclass
class CloudflareApi:
    """The API's state and handler, independent of how requests arrive."""

    token: str = "cf-api-test-token-0123456789"
    account_id: str = "a" * 32
    # token -> the permissions it holds; `token` gets ALL_PERMISSIONS unless set otherwise.
    tokens: dict[str, set[str]] = field(default_factory=dict)
    token_status: str = "active"
    # The permission-group names the token's own policy shows when it reads itself
    # (GET /user/tokens/{id}); None: the token may not read itself (no 'API Tokens Read').
    token_policies: list[str] | None = None
    created_tokens: list[dict[str, Any]] = field(default_factory=list)  # POST /accounts/{a}/tokens
    workers_subdomain: str | None = "alice"
    access_team: str | None = "alice-team"
    r2_enabled: bool = True
    containers_enabled: bool = True
    permission_groups: list[str] = field(default_factory=lambda: list(DEFAULT_PERMISSION_GROUPS))
    # What POST /containers/registries/{domain}/credentials hands out for the local registry
    # (the registry fixture's htpasswd user); None mints a random pair, as for the real registry.
    registry_login: tuple[str, str] | None = None

    scripts: dict[str, Script] = field(default_factory=dict)
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    credentials_minted: int = 0
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)  # add_zone()
    zone_routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # zone id -> routes
    asset_blobs: set[str] = field(default_factory=set)
    asset_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unknown_routes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.token, set(ALL_PERMISSIONS))

    # --- test controls -------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "simulated failure",
        code: int = 10000,
    ) -> None:
        """Answer the next `times` requests matching `method` and the regex `path` with
        `status` (after authentication, so a 429 storm still needs a good token)."""
        self.failures.append(
            Failure(method, re.compile(path), status, times, headers or {}, code, message)
        )

    def add_zone(self, name: str, zone_id: str | None = None) -> str:
        """A zone of this account (a domain proxied by Cloudflare); returns its id."""
        zone_id = zone_id or self._hex()
        self.zones[zone_id] = {
            # The fields the SDK's Zone model requires (types/zones/zone.py).
            "id": zone_id,
            "name": name,
            "account": {"id": self.account_id, "name": "Alice's account"},
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": None,
            "original_registrar": None,
            "original_dnshost": None,
            "meta": {"step": 2, "phishing_detected": False},
            "owner": {"id": None, "name": None, "type": "user"},
            "plan": {"id": "0" * 32, "name": "Free Website", "is_subscribed": True},
            "created_on": NOW,
            "modified_on": NOW,
            "activated_on": NOW,
            "permissions": ["#zone:read", "#worker:edit"],
        }
        self.zone_routes.setdefault(zone_id, [])
        return zone_id

    def revoke(self, permission: str, token: str | None = None) -> None:
        self.tokens[token or self.token].discard(permission)

    def client(self) -> httpx.Client:
        """An httpx client for the `cloudflare` SDK that calls this API in-process."""
        return httpx.Client(transport=httpx.MockTransport(self._httpx_handle))

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def mark(self) -> int:
        """An index into `requests`, for `since()`."""
        return len(self.requests)

    def since(self, mark: int) -> list[Recorded]:
        return self.requests[mark:]

    # --- request handling ----------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self._lock:
            content_type = request.headers.get("content-type", "")
            try:
                request.body = parse_body(content_type, request.raw)
            except ValueError as exc:
                response = error(400, 10026, f"could not parse the request body: {exc}")
                self._record(request, response)
                return response
            response = self._dispatch(request)
            self._record(request, response)
            return response

    def _record(self, request: Request, response: Response) -> None:
        self.requests.append(
            Recorded(request.method, request.path, request.query, request.body, response.status)
        )

    def _httpx_handle(self, request: httpx.Request) -> httpx.Response:
        ours = Request(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            headers={k.lower(): v for k, v in request.headers.items()},
            raw=request.read(),
        )
        response = self.handle(ours)
        return httpx.Response(response.status, json=response.payload, headers=response.headers)

    def _dispatch(self, request: Request) -> Response:
        if not request.path.startswith(API):
            return error(404, 7003, "No route for the URI")
        route = request.path[len(API) :]
        for method, pattern, permission, handler in self._routes():
            match = re.fullmatch(pattern, route)
            if match is None or method != request.method:
                continue
            if denied := self._authorize(request, permission, route):
                return denied
            for failure in self.failures:
                if (
                    failure.times > 0
                    and failure.method == request.method
                    and failure.path.search(request.path)
                ):
                    failure.times -= 1
                    return error(failure.status, failure.code, failure.message, failure.headers)
            groups = [urllib.parse.unquote(g) for g in match.groups()]
            if pattern.startswith("/accounts/") and groups[0] != self.account_id:
                return error(403, 9109, "Unauthorized to access requested resource")
            return handler(request, *groups)
        self.unknown_routes.append(f"{request.method} {route}")
        return error(404, 7003, f"No route for that URI: {request.method} {route}")

    def _authorize(self, request: Request, permission: str | None, route: str) -> Response | None:
        auth = request.headers.get("authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if permission == "assets-jwt":
            # The bulk upload authenticates with the session's JWT, not the API token.
            if bearer in {s["jwt"] for s in self.asset_sessions.values()}:
                return None
            return error(401, 10001, "Unable to authenticate request")
        if bearer is None or bearer not in self.tokens:
            # OPEN QUESTION: the API answers an unknown token with 401 on some endpoints and 400
            # (code 6003 "Invalid request headers") on others; 401/10001 is what this project's
            # error mapping (infra/dynamic/cf.py) and wrangler both treat as "bad token".
            return error(401, 10001, "Unable to authenticate request")
        if permission is not None and permission not in self.tokens[bearer]:
            return error(403, 10000, "Authentication error")
        return None

    def _routes(self) -> list[tuple[str, str, str | None, Callable[..., Response]]]:
        a = r"/accounts/([^/]+)"
        s = rf"{a}/workers/scripts/([^/]+)"
        c = rf"{a}/containers"
        return [
            # Workers: scripts, versions, deployments, settings, secrets, triggers.
            ("GET", rf"{a}/workers/services/([^/]+)", "workers", self._get_service),
            ("GET", rf"{a}/workers/scripts", "workers", self._list_scripts),
            ("PUT", s, "workers", self._put_script),
            ("GET", s, "workers", self._get_script_content),
            ("DELETE", s, "workers", self._delete_script),
            ("GET", rf"{s}/settings", "workers", self._get_settings),
            ("PATCH", rf"{s}/settings", "workers", self._patch_settings),
            ("GET", rf"{s}/script-settings", "workers", self._get_script_settings),
            ("PATCH", rf"{s}/script-settings", "workers", self._patch_script_settings),
            ("POST", rf"{s}/versions", "workers", self._post_version),
            ("GET", rf"{s}/versions", "workers", self._list_versions),
            ("GET", rf"{s}/versions/([^/]+)", "workers", self._get_version),
            ("GET", rf"{s}/deployments", "workers", self._list_deployments),
            ("POST", rf"{s}/deployments", "workers", self._post_deployment),
            ("GET", rf"{s}/secrets", "workers", self._list_secrets),
            ("PUT", rf"{s}/secrets", "workers", self._put_secret),
            ("GET", rf"{s}/secrets/([^/]+)", "workers", self._get_secret),
            ("DELETE", rf"{s}/secrets/([^/]+)", "workers", self._delete_secret),
            ("GET", rf"{s}/schedules", "workers", self._get_schedules),
            ("PUT", rf"{s}/schedules", "workers", self._put_schedules),
            ("GET", rf"{s}/subdomain", "workers", self._get_script_subdomain),
            ("POST", rf"{s}/subdomain", "workers", self._post_script_subdomain),
            ("POST", rf"{s}/assets-upload-session", "workers", self._assets_session),
            ("POST", rf"{a}/workers/assets/upload", "assets-jwt", self._assets_upload),
            ("GET", rf"{a}/workers/subdomain", "workers", self._get_subdomain),
            ("GET", rf"{a}/workers/durable_objects/namespaces", "workers", self._list_namespaces),
            ("GET", rf"{a}/workers/domains", "workers", self._list_domains),
            ("PUT", rf"{a}/workers/domains", "zones", self._put_domain),
            ("DELETE", rf"{a}/workers/domains/([^/]+)", "zones", self._delete_domain),
            ("GET", rf"{a}/workers/domains/records/([^/]+)", "workers", self._get_domain),
            ("PUT", rf"{s}/domains/records", "zones", self._put_script_domains),
            # Zones: wrangler's zone look-up by name and its route-conflict check.
            ("GET", r"/zones", "zones", self._list_zones),
            ("GET", r"/zones/([^/]+)/workers/routes", "zones", self._list_zone_routes),
            # Containers.
            ("GET", rf"{c}/me", "containers", self._containers_me),
            ("GET", rf"{c}/applications", "containers", self._list_apps),
            ("POST", rf"{c}/applications", "containers", self._create_app),
            ("GET", rf"{c}/applications/([^/]+)", "containers", self._get_app),
            ("PATCH", rf"{c}/applications/([^/]+)", "containers", self._edit_app),
            ("DELETE", rf"{c}/applications/([^/]+)", "containers", self._delete_app),
            ("POST", rf"{c}/applications/([^/]+)/rollouts", "containers", self._rollout),
            ("POST", rf"{c}/registries/([^/]+)/credentials", "containers", self._credentials),
            # R2.
            ("GET", rf"{a}/r2/buckets", "r2", self._list_buckets),
            ("POST", rf"{a}/r2/buckets", "r2", self._create_bucket),
            ("GET", rf"{a}/r2/buckets/([^/]+)", "r2", self._get_bucket),
            ("DELETE", rf"{a}/r2/buckets/([^/]+)", "r2", self._delete_bucket),
            # Tokens, account checks the doctor makes.
            ("GET", r"/user/tokens/verify", None, self._verify),
            ("GET", r"/user", None, self._user),
            ("GET", r"/memberships", None, self._user),
            ("GET", r"/accounts", None, self._accounts),
            ("GET", rf"{a}/tokens/verify", None, self._verify_account),
            ("GET", rf"{a}/tokens/permission_groups", "tokens", self._permission_groups),
            ("POST", rf"{a}/tokens", "tokens", self._create_token),
            ("GET", r"/user/tokens/([^/]+)", None, self._get_token),
            ("GET", rf"{a}/tokens/([^/]+)", None, self._get_account_token),
            ("GET", rf"{a}/access/organizations", "access", self._access_org),
            ("GET", rf"{a}/access/apps", "access", self._access_apps),
            ("GET", rf"{a}/ai-gateway/gateways", "ai", self._gateways),
        ]

    # --- helpers -------------------------------------------------------------------------------
    def _hex(self) -> str:
        return hashlib.sha256(f"id-{next(self._ids)}".encode()).hexdigest()[:32]

    def _script(self, name: str) -> Script | Response:
        script = self.scripts.get(name)
        if script is None:
            return error(404, 10007, "This Worker does not exist on your account.")
        return script

    def namespace_of(self, script: str, class_name: str) -> dict[str, Any] | None:
        for ns in self.namespaces.values():
            if ns["script"] == script and ns["class"] == class_name:
                return ns
        return None

    # --- Workers -------------------------------------------------------------------------------
    def _service(self, script: Script) -> dict[str, Any]:
        return {
            "id": script.name,
            "default_environment": {
                "environment": "production",
                "created_on": script.created_on,
                "modified_on": script.modified_on,
                "script": self._script_info(script),
            },
            "created_on": script.created_on,
            "modified_on": script.modified_on,
        }

    def _script_info(self, script: Script) -> dict[str, Any]:
        meta = script.metadata
        return {
            "id": script.name,
            "tag": script.tag,
            "tags": script.settings.get("tags") or [],
            "etag": script.etag,
            "handlers": ["fetch", "scheduled"],
            "migration_tag": script.migration_tag,
            "created_on": script.created_on,
            "modified_on": script.modified_on,
            "usage_model": "standard",
            "compatibility_date": meta.get("compatibility_date"),
            "compatibility_flags": meta.get("compatibility_flags", []),
            "last_deployed_from": "wrangler",
            "has_assets": script.assets is not None,
            "has_modules": True,
            "logpush": script.settings.get("logpush", False),
            "observability": script.settings.get("observability"),
            "placement_mode": None,
            "tail_consumers": script.settings.get("tail_consumers"),
        }

    def _get_service(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        return script if isinstance(script, Response) else ok(self._service(script))

    def _list_scripts(self, _req: Request, _a: str) -> Response:
        return ok([self._script_info(s) for s in self.scripts.values()])

    def _get_script_content(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        return script if isinstance(script, Response) else ok(self._script_info(script))

    def _upload(self, req: Request, name: str) -> tuple[dict[str, Any], dict[str, Part]] | Response:
        """Common checks of a Worker upload (PUT script or POST version): a multipart body with
        a JSON `metadata` part and the module it names."""
        if not isinstance(req.body, dict) or "metadata" not in req.body:
            return error(400, 10021, "Worker upload must be multipart/form-data with metadata")
        try:
            metadata = req.body["metadata"].json()
        except ValueError:
            return error(400, 10021, "metadata is not JSON")
        modules = {k: v for k, v in req.body.items() if k != "metadata"}
        main = metadata.get("main_module")
        if not main or main not in modules:
            return error(400, 10021, f"No such module: main_module {main!r} is not in the upload")
        for binding in metadata.get("bindings", []):
            if not isinstance(binding, dict) or "name" not in binding or "type" not in binding:
                return error(400, 10021, f"binding {binding!r} needs a name and a type")
        return metadata, modules

    def _do_classes(self, metadata: dict[str, Any]) -> list[str]:
        return [
            b["class_name"]
            for b in metadata.get("bindings", [])
            if b["type"] == "durable_object_namespace" and not b.get("script_name")
        ]

    def _put_script(self, req: Request, _a: str, name: str) -> Response:
        upload = self._upload(req, name)
        if isinstance(upload, Response):
            return upload
        metadata, modules = upload
        existing = self.scripts.get(name)
        current_tag = existing.migration_tag if existing else None
        migrations = metadata.get("migrations")
        new_classes: list[tuple[str, bool]] = []
        new_tag = current_tag
        if migrations:
            old_tag = migrations.get("old_tag")
            if old_tag != current_tag:
                # workers-sdk#705 / #6953: "Migration tag precondition failed; current tag is
                # 'v1' [code: 10079]" (HTTP 412, alchemy-run/alchemy-async#437).
                shown = f"'{current_tag}'" if current_tag else "unset"
                return error(
                    412, 10079, f"Migration tag precondition failed; current tag is {shown}"
                )
            for step in migrations.get("steps", [migrations]):
                for cls in step.get("new_sqlite_classes", []):
                    new_classes.append((cls, True))
                for cls in step.get("new_classes", []):
                    new_classes.append((cls, False))
            for cls, _sqlite in new_classes:
                if self.namespace_of(name, cls):
                    return error(
                        400,
                        10074,
                        f"Cannot apply new-class migration to class '{cls}' that is "
                        "already depended on by existing Durable Objects",
                    )
            new_tag = migrations.get("new_tag")
        declared = {cls for cls, _ in new_classes} | {
            ns["class"] for ns in self.namespaces.values() if ns["script"] == name
        }
        for cls in self._do_classes(metadata):
            if cls not in declared:
                # The non-versioned upload refuses a binding to a class no migration created
                # (code 10061, e.g. doitian/cloudflare-spa docs, alchemy-run/alchemy#608).
                return error(
                    400,
                    10061,
                    f"Cannot create binding for class '{cls}' because it is not "
                    "currently configured to implement Durable Objects. Configure a migration "
                    "in your configuration to add this class.",
                )
        assets = self._check_assets(metadata)
        if isinstance(assets, Response):
            return assets
        for container in metadata.get("containers", []):
            if container.get("class_name") not in declared:
                return error(
                    400,
                    10021,
                    f"container class {container.get('class_name')!r} is not a "
                    "Durable Object class of this script",
                )
        for cls, sqlite in new_classes:
            ns_id = self._hex()
            self.namespaces[ns_id] = {
                "id": ns_id,
                "name": f"{name}_{cls}",
                "script": name,
                "class": cls,
                "use_sqlite": sqlite,
            }
        if existing is None:
            existing = Script(name=name, tag=self._hex(), metadata=metadata, modules=modules)
            existing.settings = {"logpush": False, "tags": []}
            self.scripts[name] = existing
        existing.metadata = metadata
        existing.modules = modules
        existing.migration_tag = new_tag
        existing.modified_on = NOW
        existing.etag = hashlib.sha256(
            b"".join(p.data for p in modules.values()) + json.dumps(metadata).encode()
        ).hexdigest()
        existing.assets = assets
        if "observability" in metadata:
            existing.settings["observability"] = metadata["observability"]
        self._apply_secrets(existing, metadata)
        version_id = self._new_version(existing, metadata)
        self._deploy(existing, {version_id: 100})
        info = self._script_info(existing)
        info["deployment_id"] = version_id
        info["startup_time_ms"] = 12
        return ok(info)

    def _apply_secrets(self, script: Script, metadata: dict[str, Any]) -> None:
        # The upload carries the full set of bindings (bindings_inherit=strict: a secret not
        # re-sent and not `inherit`-ed is dropped, as the API does without keep_secrets).
        keep = set()
        for b in metadata.get("bindings", []):
            if b["type"] == "secret_text":
                if "text" in b:
                    script.secrets[b["name"]] = b["text"]
                keep.add(b["name"])
            elif b["type"] == "inherit":
                keep.add(b["name"])
        if not metadata.get("keep_secrets"):
            for secret in set(script.secrets) - keep:
                del script.secrets[secret]

    def _check_assets(self, metadata: dict[str, Any]) -> dict[str, Any] | Response | None:
        assets = metadata.get("assets")
        if assets is None:
            return None
        jwt = assets.get("jwt")
        for session in self.asset_sessions.values():
            if jwt in {session["jwt"], session.get("completion_jwt")}:
                missing = set(session["hashes"]) - self.asset_blobs
                if missing:
                    return error(400, 10021, f"assets upload incomplete: {len(missing)} missing")
                return {"manifest": session["manifest"], "config": assets.get("config", {})}
        return error(400, 10021, "assets.jwt is not a completed upload session")

    def _new_version(self, script: Script, metadata: dict[str, Any], *, number: int = 0) -> str:
        version_id = str(uuid.UUID(self._hex()))
        bindings = []
        for b in metadata.get("bindings", []):
            shown = {
                k: v
                for k, v in b.items()
                if k not in {"text", "value"} or b["type"] not in {"secret_text"}
            }
            if b["type"] == "durable_object_namespace" and not b.get("script_name"):
                ns = self.namespace_of(script.name, b["class_name"])
                if ns:
                    shown["namespace_id"] = ns["id"]
            if b["type"] == "secret_text":
                shown.pop("text", None)
            bindings.append(shown)
        self.versions[version_id] = {
            "id": version_id,
            "number": len(script.versions) + 1,
            "metadata": {
                "author_email": "user@example.com",
                "author_id": "author",
                "created_on": NOW,
                "modified_on": NOW,
                "source": "wrangler",
                "hasPreview": False,
            },
            "annotations": metadata.get("annotations") or {},
            "resources": {
                "bindings": bindings,
                "script": {
                    "etag": script.etag,
                    "handlers": ["fetch", "scheduled"],
                    "last_deployed_from": "wrangler",
                },
                "script_runtime": {
                    "compatibility_date": metadata.get("compatibility_date"),
                    "compatibility_flags": metadata.get("compatibility_flags", []),
                    "usage_model": "standard",
                    "limits": metadata.get("limits") or {},
                },
            },
            "script": script.name,
            "upload_metadata": metadata,
        }
        script.versions.append(version_id)
        return version_id

    def _deploy(self, script: Script, split: dict[str, int]) -> dict[str, Any]:
        deployment = {
            "id": str(uuid.UUID(self._hex())),
            "created_on": NOW,
            "source": "wrangler",
            "strategy": "percentage",
            "author_email": "user@example.com",
            "annotations": {},
            "versions": [{"version_id": v, "percentage": p} for v, p in split.items()],
        }
        script.deployments.insert(0, deployment)
        (major, _), *_ = sorted(split.items(), key=lambda kv: -kv[1])
        script.metadata = self.versions[major]["upload_metadata"]
        return deployment

    def _post_version(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        upload = self._upload(req, name)
        if isinstance(upload, Response):
            return upload
        metadata, _modules = upload
        if metadata.get("migrations"):
            # cloudflare-docs#32982 quotes the API's message verbatim.
            return error(
                400,
                10211,
                "Version upload failed. You attempted to upload a version of a "
                "Worker that includes a Durable Object migration, but migrations must be fully "
                "applied via a non-versioned deployment. Refer to the documentation for more "
                "information.",
            )
        exported = {k for k, v in (metadata.get("exports") or {}).items() if isinstance(v, dict)}
        for cls in self._do_classes(metadata):
            if self.namespace_of(name, cls) is None and cls in exported:
                # wrangler's ACTOR_BINDING_DEPENDS_ON_EXPORT_CODE; the namespace of a class
                # declared only in `exports` is created when a version is deployed. OPEN
                # QUESTION: the server's exact wording; this is wrangler's own fallback text.
                return error(
                    400,
                    100406,
                    "A Durable Object binding references a class declared in "
                    "`exports` but not yet provisioned. Declarative `exports` are reconciled "
                    "when the version is deployed.",
                )
            if self.namespace_of(name, cls) is None:
                return error(
                    400,
                    10061,
                    f"Cannot create binding for class '{cls}' because it is not "
                    "currently configured to implement Durable Objects.",
                )
        version_id = self._new_version(script, metadata)
        return ok(
            {
                "id": version_id,
                "number": self.versions[version_id]["number"],
                "startup_time_ms": 12,
                "resources": {"script": {"etag": script.etag}},
            }
        )

    def _list_versions(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        hidden = {"script", "upload_metadata"}
        items = [
            {k: v for k, v in self.versions[vid].items() if k not in hidden}
            for vid in reversed(script.versions)
        ]
        return ok({"items": items})

    def _get_version(self, _req: Request, _a: str, name: str, version: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        try:
            key = str(uuid.UUID(version))
        except ValueError:
            key = version
        found = self.versions.get(key)
        if found is None or found["script"] != name:
            return error(404, 10220, "The specified version does not exist")
        return ok({k: v for k, v in found.items() if k not in {"script", "upload_metadata"}})

    def _list_deployments(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        return ok({"deployments": script.deployments})

    def _post_deployment(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body if isinstance(req.body, dict) else {}
        split = {v["version_id"]: v["percentage"] for v in body.get("versions", [])}
        if sum(split.values()) != 100 or not all(v in self.versions for v in split):
            return error(400, 10221, "deployment versions must exist and add up to 100%")
        return ok(self._deploy(script, split))

    def _script_settings(self, script: Script) -> dict[str, Any]:
        return {
            "logpush": script.settings.get("logpush", False),
            "observability": script.settings.get("observability"),
            "tail_consumers": script.settings.get("tail_consumers"),
            "tags": script.settings.get("tags") or [],
        }

    def _get_script_settings(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        return script if isinstance(script, Response) else ok(self._script_settings(script))

    def _patch_script_settings(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body
        allowed = {"logpush", "observability", "tail_consumers", "tags"}
        if not isinstance(body, dict) or set(body) - allowed:
            return error(400, 10026, f"script settings take only {sorted(allowed)}")
        script.settings.update(body)
        return ok(self._script_settings(script))

    def _get_settings(self, _req: Request, _a: str, name: str) -> Response:
        # Script and version settings (SDK: ScriptAndVersionSettingGetResponse): the deployed
        # version's bindings (secrets by name only) plus the script-level settings.
        script = self._script(name)
        if isinstance(script, Response):
            return script
        version = self.versions[script.versions[-1]]
        runtime = version["resources"]["script_runtime"]
        return ok(
            {
                **self._script_settings(script),
                "bindings": copy.deepcopy(version["resources"]["bindings"]),
                "compatibility_date": runtime["compatibility_date"],
                "compatibility_flags": runtime["compatibility_flags"],
                "limits": runtime["limits"],
                "placement": script.metadata.get("placement") or {},
                "usage_model": "standard",
            }
        )

    def _patch_settings(self, req: Request, a: str, name: str) -> Response:
        # A settings change is a new version, deployed at once (as the API does).
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body
        if isinstance(body, dict) and isinstance(body.get("settings"), Part):
            body = body["settings"].json()
        if not isinstance(body, dict):
            return error(400, 10026, "settings must be a JSON object")
        for key in ("logpush", "observability", "tail_consumers", "tags"):
            if key in body:
                script.settings[key] = body[key]
        metadata = dict(script.metadata)
        for key in ("bindings", "compatibility_date", "compatibility_flags", "limits", "placement"):
            if key in body:
                metadata[key] = body[key]
        script.metadata = metadata
        self._apply_secrets(script, {**metadata, "keep_secrets": True})
        self._deploy(script, {self._new_version(script, metadata): 100})
        return self._get_settings(req, a, name)

    def _list_secrets(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        return ok([{"name": n, "type": "secret_text"} for n in sorted(script.secrets)])

    def _put_secret(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("type") != "secret_text" or not body.get("name") or "text" not in body:
            return error(400, 10021, "a secret needs name, text and type secret_text")
        script.secrets[body["name"]] = body["text"]
        return ok({"name": body["name"], "type": "secret_text"})

    def _get_secret(self, _req: Request, _a: str, name: str, secret: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        if secret not in script.secrets:
            return error(404, 10056, f"secret {secret} not found")
        return ok({"name": secret, "type": "secret_text"})

    def _delete_secret(self, _req: Request, _a: str, name: str, secret: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        if script.secrets.pop(secret, None) is None:
            return error(404, 10056, f"secret {secret} not found")
        return ok(None)

    def _get_schedules(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        return ok({"schedules": script.schedules})

    def _put_schedules(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body if isinstance(req.body, list) else None
        if body is None or not all(isinstance(s, dict) and "cron" in s for s in body):
            return error(400, 10021, "schedules must be a list of {cron}")
        script.schedules = [
            {"cron": s["cron"], "created_on": NOW, "modified_on": NOW} for s in body
        ]
        return ok({"schedules": script.schedules})

    def _get_script_subdomain(self, _req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        return ok(dict(script.subdomain))

    def _post_script_subdomain(self, req: Request, _a: str, name: str) -> Response:
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body if isinstance(req.body, dict) else {}
        if not isinstance(body.get("enabled"), bool):
            return error(400, 10021, "enabled must be a boolean")
        script.subdomain["enabled"] = body["enabled"]
        script.subdomain["previews_enabled"] = bool(body.get("previews_enabled", body["enabled"]))
        return ok(dict(script.subdomain))

    def _delete_script(self, req: Request, _a: str, name: str) -> Response:
        if name not in self.scripts:
            return error(404, 10007, "This Worker does not exist on your account.")
        bound = [
            app["name"]
            for app in self.apps.values()
            if self.namespaces.get(app["durable_objects"]["namespace_id"], {}).get("script") == name
        ]
        if bound and req.query.get("force") != "true":
            # OPEN QUESTION: the API's answer to deleting a script whose namespace a container
            # application still uses is undocumented; the fake asks for the application first.
            return error(
                400, 10064, f"container applications {bound} still use this script's namespace"
            )
        # OPEN QUESTION: whether deleting a script also removes its custom domains is not
        # documented; the fake keeps them (our delete removes them first either way).
        del self.scripts[name]
        for ns_id in [k for k, ns in self.namespaces.items() if ns["script"] == name]:
            del self.namespaces[ns_id]
        return ok(None)

    def _assets_session(self, req: Request, _a: str, name: str) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        manifest = body.get("manifest")
        if not isinstance(manifest, dict):
            return error(400, 10021, "manifest is required")
        hashes = sorted({entry["hash"] for entry in manifest.values()})
        session_id = self._hex()
        jwt = _jwt({"session": session_id, "exp": int(time.time()) + 3600})
        missing = [h for h in hashes if h not in self.asset_blobs]
        self.asset_sessions[session_id] = {"jwt": jwt, "manifest": manifest, "hashes": hashes}
        return ok({"jwt": jwt, "buckets": [missing] if missing else []})

    def _assets_upload(self, req: Request, _a: str) -> Response:
        auth = req.headers.get("authorization", "").removeprefix("Bearer ")
        session = next(s for s in self.asset_sessions.values() if s["jwt"] == auth)
        if not isinstance(req.body, dict):
            return error(400, 10021, "asset upload must be multipart/form-data")
        for part in req.body.values():
            content = (
                base64.b64decode(part.data) if req.query.get("base64") == "true" else part.data
            )
            del content  # stored by hash only: the end state compares manifests
            self.asset_blobs.add(part.name)
        if set(session["hashes"]) <= self.asset_blobs:
            session["completion_jwt"] = _jwt({"session": session["jwt"][-12:], "done": True})
            return ok({"jwt": session["completion_jwt"]}, status=201)
        return ok({}, status=202)

    def _get_subdomain(self, _req: Request, _a: str) -> Response:
        if self.workers_subdomain is None:
            return error(404, 10007, "This account does not have a workers.dev subdomain")
        return ok({"subdomain": self.workers_subdomain})

    def _list_namespaces(self, _req: Request, _a: str) -> Response:
        return page([dict(ns) for ns in self.namespaces.values()])

    def _list_domains(self, req: Request, _a: str) -> Response:
        items = list(self.domains.values())
        if service := req.query.get("service"):
            items = [d for d in items if d["service"] == service]
        if hostname := req.query.get("hostname"):
            items = [d for d in items if d["hostname"] == hostname]
        return ok(items)

    def _put_domain(self, req: Request, _a: str) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        if not body.get("hostname") or not body.get("service"):
            return error(400, 100116, "hostname and service are required")
        for d in self.domains.values():
            if d["hostname"] == body["hostname"]:
                d.update(service=body["service"], environment=body.get("environment", "production"))
                return ok(d)
        domain_id = self._hex()
        self.domains[domain_id] = {
            "id": domain_id,
            "hostname": body["hostname"],
            "service": body["service"],
            "environment": body.get("environment", "production"),
            "zone_id": body.get("zone_id") or "z" * 32,
            "zone_name": body.get("zone_name") or body["hostname"].split(".", 1)[-1],
        }
        return ok(self.domains[domain_id])

    def _delete_domain(self, _req: Request, _a: str, domain_id: str) -> Response:
        if self.domains.pop(domain_id, None) is None:
            return error(404, 100114, "domain not found")
        return ok(None)

    def _get_domain(self, _req: Request, _a: str, domain_id: str) -> Response:
        domain = self.domains.get(domain_id)
        return error(404, 100114, "domain not found") if domain is None else ok(domain)

    def _zone_of(self, hostname: str, origin: dict[str, Any]) -> dict[str, Any] | Response:
        zone = self.zones.get(origin.get("zone_id") or "")
        if zone is None and origin.get("zone_name"):
            zone = next((z for z in self.zones.values() if z["name"] == origin["zone_name"]), None)
        if zone is None:
            # The invalid-identifier answer the API gives for an id it does not know.
            return error(
                404, 7003, "Could not route to /zones, perhaps your object identifier is invalid?"
            )
        if hostname != zone["name"] and not hostname.endswith(f".{zone['name']}"):
            # OPEN QUESTION: the code and wording for a hostname outside its zone are not
            # documented; the fake refuses it (a custom domain is a hostname of that zone).
            return error(400, 100116, f"hostname {hostname} is not in zone {zone['name']}")
        return zone

    def _put_script_domains(self, req: Request, _a: str, name: str) -> Response:
        """wrangler's custom-domain publish (deploy's publishCustomDomains): PUT
        {override_scope, override_existing_origin, override_existing_dns_record, origins}."""
        script = self._script(name)
        if isinstance(script, Response):
            return script
        body = req.body if isinstance(req.body, dict) else {}
        origins = body.get("origins")
        if not isinstance(origins, list) or not all(
            isinstance(o, dict) and o.get("hostname") for o in origins
        ):
            return error(400, 10021, "origins must be a list of {hostname, zone_id | zone_name}")
        wanted: list[tuple[str, dict[str, Any]]] = []
        for origin in origins:
            zone = self._zone_of(origin["hostname"], origin)
            if isinstance(zone, Response):
                return zone
            taken = next(
                (d for d in self.domains.values() if d["hostname"] == origin["hostname"]), None
            )
            if taken and taken["service"] != name and not body.get("override_existing_origin"):
                # OPEN QUESTION: the real conflict code is not documented; wrangler's TTY path
                # asks first (domains/changeset), a CI deploy always sends the override.
                return error(
                    409, 100117, f"{origin['hostname']} is already a domain of {taken['service']}"
                )
            wanted.append((origin["hostname"], zone))
        if body.get("override_scope"):
            # OPEN QUESTION: read as "these origins are the script's whole set" (the name's
            # plain meaning; undocumented). Our deploy path does not rely on it: it removes a
            # domain the stack no longer names itself.
            keep = {h for h, _ in wanted}
            for domain_id, d in list(self.domains.items()):
                if d["service"] == name and d["hostname"] not in keep:
                    del self.domains[domain_id]
        result = []
        for hostname, zone in wanted:
            domain = next((d for d in self.domains.values() if d["hostname"] == hostname), None)
            if domain is None:
                domain_id = self._hex()
                domain = self.domains[domain_id] = {"id": domain_id, "hostname": hostname}
            domain.update(
                service=name,
                environment="production",
                zone_id=zone["id"],
                zone_name=zone["name"],
                cert_id=domain.get("cert_id") or self._hex(),
            )
            result.append(dict(domain))
        # OPEN QUESTION: the answer's shape is not in wrangler's or the SDK's types (wrangler
        # ignores it); the fake answers the script's domain records.
        return ok(result)

    def _list_zones(self, req: Request) -> Response:
        zones = list(self.zones.values())
        if name := req.query.get("name"):
            zones = [z for z in zones if z["name"] == name]
        if account := req.query.get("account.id"):
            zones = [z for z in zones if z["account"]["id"] == account]
        # No match: an empty list, as the API answers.
        return page(zones, int(req.query.get("page") or 1))

    def _list_zone_routes(self, _req: Request, zone_id: str) -> Response:
        if zone_id not in self.zones:
            return error(
                404, 7003, "Could not route to /zones, perhaps your object identifier is invalid?"
            )
        return ok([dict(r) for r in self.zone_routes[zone_id]])

    # --- Containers ----------------------------------------------------------------------------
    def _containers_gate(self) -> Response | None:
        if not self.containers_enabled:
            return error(403, 1000, "Containers are not enabled on this account")
        return None

    def _containers_me(self, _req: Request, a: str) -> Response:
        if err := self._containers_gate():
            return err
        # wrangler's AccountService.getMe: it reads external_account_id and limits.*.
        return ok(
            {
                "external_account_id": a,
                "legacy_identity": a,
                "limits": {
                    "account_id": a,
                    "vcpu_per_deployment": 4,
                    "memory_mib_per_deployment": 12288,
                    "memory_per_deployment": "12GB",
                    "disk_per_deployment": "20GB",
                    "disk_mb_per_deployment": 20000,
                    "total_vcpu": 100,
                    "total_memory_mib": 409600,
                    "node_group": "metal",
                    "ipv4s": 0,
                    "network_modes": ["public", "private"],
                },
                "locations": [],
                "defaults": {"vcpus": 1, "memory_mib": 4096, "disk_mb": 8000},
            }
        )

    def _list_apps(self, _req: Request, _a: str) -> Response:
        if err := self._containers_gate():
            return err
        return ok([copy.deepcopy(app) for app in self.apps.values()])

    def _create_app(self, req: Request, a: str) -> Response:
        if err := self._containers_gate():
            return err
        body = req.body
        problems = _check_app_body(body)
        if problems:
            return error(400, 1001, "; ".join(problems))
        assert isinstance(body, dict)
        if any(app["name"] == body["name"] for app in self.apps.values()):
            return error(409, 1002, f"an application named {body['name']} already exists")
        ns_id = body["durable_objects"]["namespace_id"]
        if ns_id not in self.namespaces:
            return error(400, 1001, f"durable_objects.namespace_id {ns_id} is not a namespace")
        app_id = self._hex()
        app = {
            "id": app_id,
            "account_id": a,
            "name": body["name"],
            "scheduling_policy": body["scheduling_policy"],
            "instances": body.get("instances", 0),
            "max_instances": body["max_instances"],
            "configuration": copy.deepcopy(body["configuration"]),
            "constraints": copy.deepcopy(body.get("constraints") or {"tier": 1}),
            "durable_objects": {"namespace_id": ns_id},
            "rollout_active_grace_period": body.get("rollout_active_grace_period", 0),
            "created_at": NOW,
            "updated_at": NOW,
            "version": 1,
            "health": {"instances": {"healthy": 0, "failed": 0, "starting": 0, "scheduling": 0}},
        }
        if body.get("affinities") is not None:
            app["affinities"] = body["affinities"]
        self.apps[app_id] = app
        return ok(copy.deepcopy(app))

    def _app(self, app_id: str) -> dict[str, Any] | Response:
        if err := self._containers_gate():
            return err
        app = self.apps.get(app_id)
        return app if app is not None else error(404, 1003, f"application {app_id} not found")

    def _get_app(self, _req: Request, _a: str, app_id: str) -> Response:
        app = self._app(app_id)
        return app if isinstance(app, Response) else ok(copy.deepcopy(app))

    def _edit_app(self, req: Request, _a: str, app_id: str) -> Response:
        app = self._app(app_id)
        if isinstance(app, Response):
            return app
        body = req.body
        # The fields wrangler's createApplicationToModifyApplication sends, plus the SDK's
        # application_edit_params.py.
        allowed = {
            "max_instances", "configuration", "constraints", "affinities", "scheduling_policy",
            "rollout_active_grace_period", "instances", "observability",
        }  # fmt: skip
        if not isinstance(body, dict) or set(body) - allowed:
            return error(400, 1001, f"unexpected fields {sorted(set(body or {}) - allowed)}")
        if "max_instances" in body and (
            not isinstance(body["max_instances"], int) or body["max_instances"] < 1
        ):
            return error(400, 1001, "max_instances must be a positive integer")
        if "configuration" in body:
            config = body["configuration"] or {}
            if "instance_type" in config and config["instance_type"] not in INSTANCE_TYPES:
                return error(400, 1001, "configuration.instance_type is not a known instance type")
        for key, value in body.items():
            if key == "configuration" and isinstance(value, dict):
                # The API merges a partial configuration, as wrangler's mergeDeep assumes.
                app["configuration"].update({k: v for k, v in value.items() if v is not None})
            elif value is not None:
                app[key] = copy.deepcopy(value)
        app["version"] += 1
        app["updated_at"] = NOW
        return ok(copy.deepcopy(app))

    def _delete_app(self, _req: Request, _a: str, app_id: str) -> Response:
        if err := self._containers_gate():
            return err
        if self.apps.pop(app_id, None) is None:
            return error(404, 1003, f"application {app_id} not found")
        return ok({})

    def _rollout(self, req: Request, _a: str, app_id: str) -> Response:
        app = self._app(app_id)
        if isinstance(app, Response):
            return app
        body = req.body if isinstance(req.body, dict) else {}
        problems = [f"{k} is required" for k in ("description", "strategy") if k not in body]
        if body.get("strategy") not in ("rolling", "new_instances"):
            problems.append("strategy must be rolling or new_instances")
        target = body.get("target_configuration") or {}
        if "instance_type" in target and target["instance_type"] not in INSTANCE_TYPES:
            problems.append("unknown instance_type")
        if problems:
            return error(400, 1001, "; ".join(problems))
        app["configuration"].update(target)
        app["version"] += 1
        rollout = {
            "id": self._hex(),
            "application_id": app_id,
            "created_at": NOW,
            "last_updated_at": NOW,
            "description": body["description"],
            "kind": body.get("kind", "full_auto"),
            "strategy": body["strategy"],
            "status": "progressing",
            "target_version": app["version"],
            "current_version": app["version"] - 1,
            "progress": {
                "total_steps": 1,
                "current_step": 0,
                "updated_instances": 0,
                "total_instances": 0,
            },
            "steps": [],
            "health": {"instances": {"healthy": 0, "failed": 0, "starting": 0, "scheduling": 0}},
            "current_configuration": copy.deepcopy(app["configuration"]),
            "target_configuration": target,
            "request": copy.deepcopy(body),
        }
        self.rollouts.append(rollout)
        return ok({k: v for k, v in rollout.items() if k not in {"application_id", "request"}})

    def _credentials(self, req: Request, a: str, domain: str) -> Response:
        if err := self._containers_gate():
            return err
        body = req.body if isinstance(req.body, dict) else {}
        if int(body.get("expiration_minutes", 0)) <= 0:
            return error(400, 1001, "expiration_minutes must be positive for managed registries")
        if not body.get("permissions") or set(body["permissions"]) - {"pull", "push", "list"}:
            return error(400, 1001, "permissions are required for managed registries")
        self.credentials_minted += 1
        if self.registry_login is not None:
            username, password = self.registry_login
        else:
            username, password = "v1", f"registry-password-{self._hex()}"
        return ok(
            {"account_id": a, "registry_host": domain, "username": username, "password": password}
        )

    # --- R2 ------------------------------------------------------------------------------------
    def _r2_gate(self) -> Response | None:
        if not self.r2_enabled:
            return error(403, 10042, "Please enable R2 through the Cloudflare Dashboard.")
        return None

    def _list_buckets(self, _req: Request, _a: str) -> Response:
        if err := self._r2_gate():
            return err
        return ok({"buckets": list(self.buckets.values())})

    def _create_bucket(self, req: Request, _a: str) -> Response:
        if err := self._r2_gate():
            return err
        body = req.body if isinstance(req.body, dict) else {}
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name):
            return error(400, 10005, "The bucket name is not valid.")
        if name in self.buckets:
            return error(409, 10004, "The bucket you tried to create already exists")
        self.buckets[name] = {
            "name": name,
            "creation_date": NOW,
            "location": body.get("locationHint", "WEUR").upper(),
            "storage_class": body.get("storageClass", "Standard"),
        }
        return ok(self.buckets[name])

    def _get_bucket(self, _req: Request, _a: str, name: str) -> Response:
        if err := self._r2_gate():
            return err
        if name not in self.buckets:
            return error(404, 10006, "The specified bucket does not exist.")
        return ok(self.buckets[name])

    def _delete_bucket(self, _req: Request, _a: str, name: str) -> Response:
        if err := self._r2_gate():
            return err
        if self.buckets.pop(name, None) is None:
            return error(404, 10006, "The specified bucket does not exist.")
        return ok(None)

    # --- tokens and account checks -------------------------------------------------------------
    def _verify(self, _req: Request) -> Response:
        return ok({"id": "tok-user", "status": self.token_status})

    def _user(self, _req: Request) -> Response:
        # wrangler asks for the user (then memberships, then accounts) after a 403 to print
        # who it is. The tokens here are account tokens, which hold no user-level permission.
        # OPEN QUESTION: the exact code the API answers an account-owned token with here.
        return error(403, 9109, "Valid user-level authentication not found")

    def _accounts(self, _req: Request) -> Response:
        return page([{"id": self.account_id, "name": "Test account", "type": "standard"}])

    def _token(self, token_id: str) -> Response:
        if self.token_policies is None:
            return error(403, 10000, "Authentication error")
        if token_id not in {"tok-user", "tok-account"}:
            return error(404, 1003, "Invalid token id")
        groups = [{"id": f"g{i}", "name": g} for i, g in enumerate(self.token_policies)]
        policy = {"id": "p1", "effect": "allow", "resources": {}, "permission_groups": groups}
        return ok({"id": token_id, "name": "deploy", "status": self.token_status,
                   "policies": [policy]})  # fmt: skip

    def _create_token(self, req: Request, _a: str) -> Response:
        """An account-owned token (SDK accounts/tokens/token_create_params.py: name, policies of
        {effect, permission_groups: [{id}], resources}); the answer carries its value once."""
        body = req.body if isinstance(req.body, dict) else {}
        policies = body.get("policies")
        if not body.get("name") or not isinstance(policies, list) or not policies:
            return error(400, 1001, "a token needs a name and at least one policy")
        known = {hashlib.sha256(n.encode()).hexdigest()[:32] for n in self.permission_groups}
        for policy in policies:
            if policy.get("effect") not in {"allow", "deny"} or not policy.get("resources"):
                return error(400, 1001, "each policy needs an effect and resources")
            for group in policy.get("permission_groups") or []:
                if group.get("id") not in known:
                    return error(400, 1001, f"unknown permission group {group.get('id')!r}")
        token = {
            "id": self._hex(),
            "name": body["name"],
            "status": "active",
            "value": f"cf-token-value-{len(self.created_tokens)}-{self._hex()[:12]}",
            "policies": policies,
        }
        self.created_tokens.append(token)
        self.tokens.setdefault(token["value"], set())
        return ok(token)

    def _get_token(self, _req: Request, token_id: str) -> Response:
        return self._token(token_id)

    def _get_account_token(self, _req: Request, _a: str, token_id: str) -> Response:
        return self._token(token_id)

    def _verify_account(self, _req: Request, _a: str) -> Response:
        return ok({"id": "tok-account", "status": self.token_status})

    def _permission_groups(self, req: Request, _a: str) -> Response:
        groups = [
            {"id": hashlib.sha256(name.encode()).hexdigest()[:32], "name": name,
             "scopes": ["com.cloudflare.api.account"]}
            for name in self.permission_groups
        ]  # fmt: skip
        # The API filters by exact name and answers an empty list when nothing matches (no
        # error), so a caller must check it found the group it asked for.
        if "name" in req.query:
            groups = [g for g in groups if g["name"] == req.query["name"]]
        return ok(groups)

    def _access_org(self, _req: Request, _a: str) -> Response:
        if self.access_team is None:
            return error(404, 12130, "access.api.error.not_found: organization not found")
        return ok(
            {
                "auth_domain": f"{self.access_team}.cloudflareaccess.com",
                "name": self.access_team,
                "created_at": "2026-01-01T00:00:00Z",
            }
        )

    def _access_apps(self, _req: Request, _a: str) -> Response:
        return page([])

    def _gateways(self, _req: Request, _a: str) -> Response:
        return page([])

    # --- end state -----------------------------------------------------------------------------
    def end_state(self) -> dict[str, Any]:
        """What a deploy leaves, in a form two deploy paths can be compared by (ids replaced by
        what they point at, secrets by their names)."""
        scripts = {}
        for name, script in self.scripts.items():
            meta = script.metadata
            scripts[name] = {
                "main_module": meta.get("main_module"),
                "bindings": sorted(
                    ({"name": b["name"], "type": b["type"]} for b in meta.get("bindings", [])),
                    key=lambda b: b["name"],
                ),
                "containers": [
                    {"class_name": c.get("class_name")} for c in meta.get("containers", [])
                ],
                "migration_tag": script.migration_tag,
                "sqlite_classes": sorted(
                    ns["class"]
                    for ns in self.namespaces.values()
                    if ns["script"] == name and ns["use_sqlite"]
                ),
                "compatibility_date": meta.get("compatibility_date"),
                "compatibility_flags": sorted(meta.get("compatibility_flags", [])),
                "assets": None
                if script.assets is None
                else {
                    "files": sorted(script.assets["manifest"]),
                    "config": script.assets["config"],
                },
                "secrets": sorted(script.secrets),
                "schedules": sorted(s["cron"] for s in script.schedules),
                "workers_dev": script.subdomain["enabled"],
            }
        apps = {}
        for app in self.apps.values():
            ns = self.namespaces.get(app["durable_objects"]["namespace_id"])
            apps[app["name"]] = {
                "image": app["configuration"].get("image"),
                "instance_type": app["configuration"].get("instance_type"),
                "max_instances": app["max_instances"],
                "durable_object": None if ns is None else f"{ns['script']}.{ns['class']}",
            }
        return {
            "scripts": scripts,
            "applications": apps,
            "buckets": sorted(self.buckets),
            "domains": sorted((d["hostname"], d["service"]) for d in self.domains.values()),
        }


def _check_app_body(body: Any) -> list[str]:
    """The create-application request the SDK types as required (application_create_params.py:
    name, scheduling_policy, max_instances, configuration.image, durable_objects.namespace_id)."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [
        f"{key} is required"
        for key in ("name", "scheduling_policy", "max_instances", "configuration")
        if key not in body
    ]
    config = body.get("configuration") or {}
    if not config.get("image"):
        problems.append("configuration.image is required")
    # OPEN QUESTION: whether the API accepts `repo:tag@sha256:...` (tag and digest) as well as
    # `repo@sha256:...` is undocumented; wrangler sends the digest form, and the fake accepts
    # any non-empty reference rather than invent a rule.
    if "instance_type" in config and config["instance_type"] not in INSTANCE_TYPES:
        problems.append("configuration.instance_type is not a known instance type")
    do = body.get("durable_objects")
    if do is not None and (not isinstance(do, dict) or set(do) != {"namespace_id"}):
        # SDK: CcContainersCreateDurableObjectApplicationRequestDurableObjects has only
        # namespace_id (required); {script_name, class_name} is no field of the API.
        problems.append("durable_objects must be {namespace_id}")
    if do is None:
        problems.append("durable_objects.namespace_id is required")
    if not isinstance(body.get("max_instances"), int):
        problems.append("max_instances must be an integer")
    return problems


def _jwt(claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(b'fake-signature')}"


# --- the HTTP server ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: CloudflareApi  # set on the subclass the server makes

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(url.path),
            query=dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw=raw,
        )
        response = self.api.handle(request)
        body = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request is in api.requests; stderr stays quiet


class CloudflareApiServer:
    """`CloudflareApi` served on 127.0.0.1:<free port> from a daemon thread."""

    def __init__(self, api: CloudflareApi | None = None) -> None:
        self.api = api or CloudflareApi()
        handler = type("Handler", (_Handler,), {"api": self.api})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{API}"

    def start(self) -> CloudflareApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CloudflareApiServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
