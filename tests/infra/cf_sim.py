"""A small, stateful simulation of the Cloudflare API at the httpx layer.

Plug it into the official SDK with
`http_client=httpx.Client(transport=httpx.MockTransport(sim.handle))`. It checks the bearer
token, the paths and the request bodies the program sends, keeps the state those calls change
(container applications, rollouts, minted registry credentials) and can inject failures
(`sim.fail(...)`) to exercise 401/403/404/409/429/5xx handling. Every request is recorded
(method, path, JSON body; never the Authorization header) for assertions.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/client/v4"
INSTANCE_TYPES = {"lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4"}


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    query: dict[str, str]


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    errors: list[dict[str, Any]]


@dataclass
class CloudflareSim:
    token: str = "sim-token-0123456789"
    account_id: str = "a" * 32
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    credentials_minted: int = 0
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Account features the doctor checks; switch off to simulate a half-set-up account.
    token_permissions: set[str] = field(
        default_factory=lambda: {"r2", "workers", "containers", "access", "tokens", "ai"}
    )
    permission_groups: list[str] = field(
        default_factory=lambda: [
            "Workers R2 Storage Bucket Item Write",
            "Workers R2 Storage Bucket Item Read",
            "AI Gateway Run",
            "AI Gateway Read",
        ]
    )
    workers_subdomain: str | None = "alice"
    access_team: str | None = "alice-team"
    r2_enabled: bool = True
    containers_enabled: bool = True
    token_status: str = "active"
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- test controls -------------------------------------------------------------------
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
        """Answer the next `times` matching requests with `status` (path is a regex)."""
        self.failures.append(
            Failure(
                method,
                re.compile(path),
                status,
                times,
                headers or {},
                [{"code": code, "message": message}],
            )
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # --- the API -------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.requests.append(Recorded(request.method, path, body, dict(request.url.params)))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, 10001, "Unable to authenticate request")
        for failure in self.failures:
            if failure.times > 0 and failure.method == request.method and failure.path.search(path):
                failure.times -= 1
                return httpx.Response(
                    failure.status,
                    json={
                        "success": False,
                        "errors": failure.errors,
                        "messages": [],
                        "result": None,
                    },
                    headers=failure.headers,
                )
        if not path.startswith(API):
            return _error(404, 7000, "No route for that URI")
        route = path[len(API) :]
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, route)
            if match and method == request.method:
                return handler(body, *match.groups())
        return _error(404, 7000, f"No route for {request.method} {route}")

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        acct = rf"/accounts/({self.account_id}|[^/]+)"
        return [
            ("POST", rf"{acct}/containers/applications", self._create_app),
            ("GET", rf"{acct}/containers/applications", self._list_apps),
            ("GET", rf"{acct}/containers/applications/([^/]+)", self._get_app),
            ("PATCH", rf"{acct}/containers/applications/([^/]+)", self._edit_app),
            ("DELETE", rf"{acct}/containers/applications/([^/]+)", self._delete_app),
            ("POST", rf"{acct}/containers/applications/([^/]+)/rollouts", self._rollout),
            ("POST", rf"{acct}/containers/registries/([^/]+)/credentials", self._credentials),
            ("GET", r"/user/tokens/verify", self._verify),
            ("GET", rf"{acct}/tokens/verify", self._verify_account),
            ("GET", rf"{acct}/r2/buckets", self._r2_buckets),
            ("GET", rf"{acct}/workers/subdomain", self._subdomain),
            ("GET", rf"{acct}/access/organizations", self._access_org),
            ("GET", rf"{acct}/access/apps", self._access_apps),
            ("GET", rf"{acct}/ai-gateway/gateways", self._gateways),
            ("GET", rf"{acct}/tokens/permission_groups", self._permission_groups),
        ]

    def _account(self, account: str) -> httpx.Response | None:
        if account != self.account_id:
            return _error(403, 9109, "Unauthorized to access requested resource")
        return None

    def _needs(self, permission: str) -> httpx.Response | None:
        if permission not in self.token_permissions:
            return _error(403, 10000, "Authentication error")
        return None

    def _create_app(self, body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        if not self.containers_enabled:
            return _error(403, 1000, "Containers are not enabled on this account")
        problems = _check_app_body(body)
        if problems:
            return _error(400, 1001, "; ".join(problems))
        if any(a["name"] == body["name"] for a in self.apps.values()):
            return _error(409, 1002, f"an application named {body['name']} already exists")
        app_id = f"app-{next(self._ids):04d}"
        do = body["durable_objects"]
        app = {
            "id": app_id,
            "account_id": account,
            "name": body["name"],
            "scheduling_policy": body["scheduling_policy"],
            "instances": body["instances"],
            "max_instances": body["max_instances"],
            "configuration": dict(body["configuration"]),
            "durable_objects": {"namespace_id": f"ns-{do['script_name']}-{do['class_name']}"},
            "created_at": "2026-11-21T00:00:00Z",
            "updated_at": "2026-11-21T00:00:00Z",
            "version": 1,
        }
        self.apps[app_id] = app
        return _ok(app)

    def _list_apps(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        if not self.containers_enabled:
            return _error(403, 1000, "Containers are not enabled on this account")
        return _ok(list(self.apps.values()))

    def _get_app(self, _body: Any, account: str, app_id: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        app = self.apps.get(app_id)
        return _ok(app) if app else _error(404, 1003, f"application {app_id} not found")

    def _edit_app(self, body: Any, account: str, app_id: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        app = self.apps.get(app_id)
        if app is None:
            return _error(404, 1003, f"application {app_id} not found")
        allowed = {"max_instances", "configuration", "constraints", "observability"}
        if not isinstance(body, dict) or set(body) - allowed:
            return _error(400, 1001, f"unexpected fields {sorted(set(body or {}) - allowed)}")
        if "max_instances" in body:
            if not isinstance(body["max_instances"], int) or body["max_instances"] < 1:
                return _error(400, 1001, "max_instances must be a positive integer")
            app["max_instances"] = body["max_instances"]
        app["version"] += 1
        return _ok(app)

    def _delete_app(self, _body: Any, account: str, app_id: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        if self.apps.pop(app_id, None) is None:
            return _error(404, 1003, f"application {app_id} not found")
        return _ok({})

    def _rollout(self, body: Any, account: str, app_id: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        app = self.apps.get(app_id)
        if app is None:
            return _error(404, 1003, f"application {app_id} not found")
        problems = []
        for key in ("description", "strategy", "target_configuration"):
            if key not in body:
                problems.append(f"{key} is required")
        if body.get("strategy") not in ("rolling", "new_instances"):
            problems.append("strategy must be rolling or new_instances")
        target = body.get("target_configuration") or {}
        if "instance_type" in target and target["instance_type"] not in INSTANCE_TYPES:
            problems.append("unknown instance_type")
        if problems:
            return _error(400, 1001, "; ".join(problems))
        app["configuration"].update(target)
        app["version"] += 1
        rollout = {"id": f"rollout-{next(self._ids):04d}", "application_id": app_id, **body}
        self.rollouts.append(rollout)
        return _ok(
            {
                "id": rollout["id"],
                "created_at": "2026-11-21T00:00:00Z",
                "description": body["description"],
                "kind": body.get("kind", "full_auto"),
                "strategy": body["strategy"],
                "status": "progressing",
                "target_version": app["version"],
                "current_version": app["version"] - 1,
                "last_updated_at": "2026-11-21T00:00:00Z",
                "progress": {
                    "total_steps": 1,
                    "current_step": 0,
                    "updated_instances": 0,
                    "total_instances": 0,
                },
                "steps": [],
                "health": {
                    "instances": {"healthy": 0, "failed": 0, "starting": 0, "scheduling": 0}
                },
                "current_configuration": app["configuration"],
                "target_configuration": target,
            }
        )

    def _credentials(self, body: Any, account: str, domain: str) -> httpx.Response:
        if err := self._account(account) or self._needs("containers"):
            return err
        if domain != "registry.cloudflare.com":
            return _error(404, 1003, f"registry {domain} is not configured")
        if not isinstance(body, dict) or int(body.get("expiration_minutes", 0)) <= 0:
            return _error(400, 1001, "expiration_minutes must be positive for managed registries")
        if not body.get("permissions") or set(body["permissions"]) - {"pull", "push", "list"}:
            return _error(400, 1001, "permissions are required for managed registries")
        self.credentials_minted += 1
        return _ok(
            {
                "account_id": account,
                "registry_host": domain,
                "username": "v1",
                "password": f"sim-registry-password-{self.credentials_minted}",
            }
        )

    def _verify(self, _body: Any) -> httpx.Response:
        return _ok({"id": "tok-user", "status": self.token_status})

    def _verify_account(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account):
            return err
        return _ok({"id": "tok-account", "status": self.token_status})

    def _r2_buckets(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("r2"):
            return err
        if not self.r2_enabled:
            return _error(403, 10042, "Please enable R2 through the Cloudflare Dashboard.")
        return _ok({"buckets": []})

    def _subdomain(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("workers"):
            return err
        if self.workers_subdomain is None:
            return _error(404, 10007, "This account does not have a workers.dev subdomain")
        return _ok({"subdomain": self.workers_subdomain})

    def _access_org(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("access"):
            return err
        if self.access_team is None:
            return _error(404, 12130, "access.api.error.not_found: organization not found")
        return _ok(
            {
                "auth_domain": f"{self.access_team}.cloudflareaccess.com",
                "name": self.access_team,
                "created_at": "2026-01-01T00:00:00Z",
            }
        )

    def _access_apps(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("access"):
            return err
        return _page([])

    def _gateways(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("ai"):
            return err
        return _page([])

    def _permission_groups(self, _body: Any, account: str) -> httpx.Response:
        if err := self._account(account) or self._needs("tokens"):
            return err
        groups = [
            {"id": f"pg-{i}", "name": name, "scopes": ["com.cloudflare.api.account"]}
            for i, name in enumerate(self.permission_groups)
        ]
        return _ok(groups)


def _check_app_body(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = []
    for key in ("name", "scheduling_policy", "instances", "max_instances", "configuration"):
        if key not in body:
            problems.append(f"{key} is required")
    config = body.get("configuration") or {}
    if not config.get("image"):
        problems.append("configuration.image is required")
    if config.get("instance_type") not in INSTANCE_TYPES:
        problems.append("configuration.instance_type is not a known instance type")
    do = body.get("durable_objects") or {}
    if not ({"class_name", "script_name"} <= set(do) or "namespace_id" in do):
        problems.append("durable_objects needs class_name and script_name, or namespace_id")
    if not isinstance(body.get("max_instances"), int):
        problems.append("max_instances must be an integer")
    return problems


def _ok(result: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "errors": [], "messages": [], "result": result}
    )


def _page(items: list[Any]) -> httpx.Response:
    info = {"page": 1, "per_page": 50, "count": len(items), "total_count": len(items)}
    return httpx.Response(
        200,
        json={"success": True, "errors": [], "messages": [], "result": items, "result_info": info},
    )


def _error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        },
    )
