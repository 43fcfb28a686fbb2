"""Real pulumi_policy argument objects for the validators, and a violation collector.

The arguments are pulumi_policy's own classes with properties wrapped in its unknown-checking
proxy, so a validator sees in tests what it sees under the engine.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

PROJECT = "moltworker"


class Violations(list[tuple[str, str | None]]):
    """A `report_violation` callback that keeps what it is told."""

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.append((message, urn))

    @property
    def messages(self) -> list[str]:
        return [message for message, _ in self]


@dataclass
class Res:
    """One resource as a test describes it; converted to pulumi_policy's classes on demand."""

    type: str
    name: str
    props: dict[str, Any]
    protect: bool = False
    delete_before_replace: bool | None = None
    parent: str | None = None
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    # Dependencies beyond those of property_dependencies (e.g. `depends_on`).
    dependencies: list[str] = field(default_factory=list)
    stack: str = "prod"

    @property
    def urn(self) -> str:
        kind = self.type if self.parent is None else f"{self.parent}${self.type}"
        return f"urn:pulumi:{self.stack}::{PROJECT}::{kind}::{self.name}"

    def options(self) -> PolicyResourceOptions:
        return PolicyResourceOptions(
            self.protect,
            [],
            self.delete_before_replace,
            [],
            PolicyCustomTimeouts(0, 0, 0),
            [],
            None,
        )

    def resource_args(self, config: Mapping[str, Any] | None = None) -> ResourceValidationArgs:
        return ResourceValidationArgs(
            self.type,
            unknown_checking_proxy(copy.deepcopy(self.props)),
            self.urn,
            self.name,
            self.options(),
            None,
            config,
        )


def stack_args(
    resources: Sequence[Res], config: Mapping[str, Any] | None = None
) -> StackValidationArgs:
    """StackValidationArgs with parents and property dependencies resolved, as the engine does."""
    converted: dict[str, PolicyResource] = {}
    for res in resources:
        converted[res.name] = PolicyResource(
            res.type,
            unknown_checking_proxy(copy.deepcopy(res.props)),
            res.urn,
            res.name,
            res.options(),
            None,
            None,
            [],
            {},
        )
    for res in resources:
        target = converted[res.name]
        target.dependencies.extend(converted[n] for n in res.dependencies)
        for key, names in res.property_dependencies.items():
            deps = [converted[n] for n in names]
            target.property_dependencies[key] = deps
            target.dependencies.extend(deps)
    return StackValidationArgs(list(converted.values()), config)


def find(resources: Sequence[Res], name: str) -> Res:
    matches = [res for res in resources if res.name == name]
    assert len(matches) == 1, f"expected one resource named {name!r}, found {len(matches)}"
    return matches[0]


# --- a compliant stack, shaped like the resources infra/ declares ----------------------------

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
R2_WRITE = "2efd5506f9c8494dacb1fa10a3e7d5b6"
R2_READ = "6a018a9f2fc74eb6b293b0c548f38b39"
# Stands in for the account's "AI Gateway Run" permission group id.
GATEWAY_RUN = "9c0e3f1a2b4d4e5f8a7b6c5d4e3f2a1b"
TOKEN_POLICY_CONFIG = {"aiGatewayRunPermissionGroupIds": [GATEWAY_RUN]}
DIGEST = "sha256:" + "ab" * 32
HOST = "agent.example.com"

APP_TYPE = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POLICY_TYPE = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"


def bucket_scope(bucket: str, account: str = ACCOUNT) -> str:
    return f'{{"com.cloudflare.edge.r2.bucket.{account}_default_{bucket}": "*"}}'


def account_scope(account: str = ACCOUNT) -> str:
    return f'{{"com.cloudflare.api.account.{account}": "*"}}'


def token(name: str, resources: str, groups: list[str], effect: str = "allow") -> Res:
    return Res(
        "cloudflare:index/accountToken:AccountToken",
        name,
        {
            "accountId": ACCOUNT,
            "name": name,
            "policies": [
                {
                    "effect": effect,
                    "permissionGroups": [{"id": g} for g in groups],
                    "resources": resources,
                }
            ],
        },
    )


def binding(name: str, kind: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": kind, **extra}
    if text is not None:
        out["text"] = text
    return out


def worker_bindings(stack: str = "prod", **overrides: str) -> list[dict[str, Any]]:
    plain = {
        "R2_ENDPOINT": f"https://{ACCOUNT}.r2.cloudflarestorage.com",
        "R2_BUCKET": f"moltworker-{stack}-data",
        "AI_GATEWAY_BASE_URL": f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/moltworker-{stack}",
        "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
        "MODEL_FALLBACKS": "openai/gpt-5,openai/gpt-5-mini",
        "TELEGRAM_DM_POLICY": "pairing",
        "DISCORD_DM_POLICY": "pairing",
        "SLACK_DM_POLICY": "allowlist",
        "MOLT_SNAPSHOT_KEEP": "30",
        "SLEEP_AFTER": "10m",
        "DEBUG_ROUTES": "false",
    }
    plain.update(overrides)
    secrets = (
        "OPENCLAW_GATEWAY_TOKEN",
        "MOLT_CONTROL_SECRET",
        "MOLT_CDP_SECRET",
        "MOLT_SNAPSHOT_KEY",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
        "AI_GATEWAY_TOKEN",
        "CF_ACCESS_AUD",
        "CF_ACCESS_TEAM_DOMAIN",
        "ANTHROPIC_API_KEY",
    )
    return [
        binding("SANDBOX", "durable_object_namespace", class_name="Sandbox"),
        binding("DATA", "r2_bucket", bucket_name=f"moltworker-{stack}-data"),
        binding("BROWSER", "browser"),
        binding("ASSETS", "assets"),
        *(binding(k, "plain_text", v) for k, v in sorted(plain.items())),
        *(binding(k, "secret_text", "redacted-in-tests") for k in secrets),
    ]


def worker_deploy(stack: str, bindings: list[dict[str, Any]], *, custom_domain: bool = True) -> Res:
    """The wrangler deploy resource (infra/dynamic/worker_deploy.py) carrying `bindings`:
    plain-text and JSON ones become `vars`, secret ones `secret_names`, the rest `bindings`."""
    typed, plain, secret_names = [], {}, []
    for b in bindings:
        if b["type"] == "plain_text":
            plain[b["name"]] = b["text"]
        elif b["type"] == "json":
            plain[b["name"]] = json.loads(b["text"])
        elif b["type"] in ("secret_text", "secret_key"):
            secret_names.append(b["name"])
        else:
            typed.append(b)
    return Res(
        "pulumi-python:dynamic/moltworker:WorkerDeploy",
        "worker-deploy",
        {
            "account_id": ACCOUNT,
            "script_name": f"moltworker-{stack}",
            "main_module": "index.js",
            "bindings": typed,
            "vars": plain,
            "secret_names": secret_names,
            "app_name": f"moltworker-{stack}",
            "class_name": "Sandbox",
            "dockerfile": "container/Dockerfile",
            "image_vars": {"OPENCLAW_VERSION": "2026.9.6"},
            "instance_type": "standard-1",
            "max_instances": 1,
            "workers_dev": not custom_domain,
            "custom_domain": HOST if custom_domain else "",
            "zone_id": "1" * 32 if custom_domain else "",
        },
    )


def compliant_stack(stack: str = "prod", *, custom_domain: bool = True) -> list[Res]:
    """Every resource kind the rules look at, configured the way the rules require."""
    bucket = f"moltworker-{stack}-data"
    host = HOST if custom_domain else f"moltworker-{stack}.your-subdomain.workers.dev"
    resources = [
        Res(
            "cloudflare:index/r2Bucket:R2Bucket",
            "storage-bucket",
            {"accountId": ACCOUNT, "name": bucket, "storageClass": "Standard"},
            protect=True,
        ),
        token("storage-token", bucket_scope(bucket), [R2_WRITE]),
        Res(
            "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle",
            "storage-lifecycle",
            {
                "accountId": ACCOUNT,
                "bucketName": bucket,
                "rules": [
                    {
                        "id": "abort-incomplete-multipart-uploads",
                        "enabled": True,
                        "conditions": {"prefix": ""},
                        "abortMultipartUploadsTransition": {
                            "condition": {"type": "Age", "maxAge": 7 * 86400}
                        },
                    },
                    {
                        "id": "expire-trash",
                        "enabled": True,
                        "conditions": {"prefix": "trash/"},
                        "deleteObjectsTransition": {
                            "condition": {"type": "Age", "maxAge": 30 * 86400}
                        },
                    },
                ],
            },
            protect=True,
        ),
        Res(
            "random:index/randomBytes:RandomBytes",
            "secrets-snapshot-key",
            {"length": 32},
            protect=True,
        ),
        Res(
            "cloudflare:index/aiGateway:AiGateway",
            "ai-gateway",
            {
                "accountId": ACCOUNT,
                "aiGatewayId": f"moltworker-{stack}",
                "authentication": True,
                "collectLogs": True,
                "rateLimitingLimit": 60,
                "rateLimitingInterval": 60,
            },
        ),
        token("ai-token", account_scope(), [GATEWAY_RUN]),
        Res(
            POLICY_TYPE,
            "access-admins",
            {
                "accountId": ACCOUNT,
                "decision": "allow",
                "name": f"{host} admins",
                "includes": [{"emailDomain": {"domain": "example.com"}}],
            },
        ),
        Res(
            POLICY_TYPE,
            "access-ci",
            {
                "accountId": ACCOUNT,
                "decision": "non_identity",
                "name": f"{host} CI service token",
                "includes": [{"serviceToken": {"tokenId": "ci-token-id"}}],
            },
        ),
        Res(
            APP_TYPE,
            "access-app",
            {
                "accountId": ACCOUNT,
                "type": "self_hosted",
                "name": f"{host} admin",
                "destinations": [
                    {"type": "public", "uri": f"{host}{path}{suffix}"}
                    for path in ("/_admin", "/api", "/debug")
                    for suffix in ("", "/*")
                ],
                "policies": [
                    {"id": "admins-policy-id", "precedence": 1},
                    {"id": "ci-policy-id", "precedence": 2},
                ],
            },
            property_dependencies={"policies": ["access-admins", "access-ci"]},
        ),
        worker_deploy(stack, worker_bindings(stack), custom_domain=custom_domain),
    ]
    for res in resources:
        res.stack = stack
    return resources
