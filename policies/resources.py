"""How the moltworker resources look to the Pulumi engine: type tokens and property access.

The engine hands policies the resource inputs under their wire names (camelCase for the bridged
Cloudflare provider, the Python keys as written for dynamic resources). `prop` accepts both
spellings so a validator reads the same under the engine, under mocks and in unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
R2_BUCKET_LIFECYCLE = "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle"
R2_MANAGED_DOMAIN = "cloudflare:index/r2ManagedDomain:R2ManagedDomain"
R2_CUSTOM_DOMAIN = "cloudflare:index/r2CustomDomain:R2CustomDomain"
ACCOUNT_TOKEN = "cloudflare:index/accountToken:AccountToken"  # noqa: S105 - a type token
API_TOKEN = "cloudflare:index/apiToken:ApiToken"  # noqa: S105 - a type token
TOKENS = (ACCOUNT_TOKEN, API_TOKEN)
# The Zero Trust resources still answer to their pre-6.0 names through aliases.
ACCESS_APPLICATIONS = (
    "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication",
    "cloudflare:index/accessApplication:AccessApplication",
)
ACCESS_POLICIES = (
    "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy",
    "cloudflare:index/accessPolicy:AccessPolicy",
)
AI_GATEWAY = "cloudflare:index/aiGateway:AiGateway"
WORKERS_SCRIPT = "cloudflare:index/workersScript:WorkersScript"
WORKER_VERSION = "cloudflare:index/workerVersion:WorkerVersion"
WORKER_SCRIPTS = (WORKERS_SCRIPT, WORKER_VERSION)
WORKER = "cloudflare:index/worker:Worker"
WORKERS_CUSTOM_DOMAIN = "cloudflare:index/workersCustomDomain:WorkersCustomDomain"
WORKERS_ROUTE = "cloudflare:index/workersRoute:WorkersRoute"
WORKERS_SCRIPT_SUBDOMAIN = "cloudflare:index/workersScriptSubdomain:WorkersScriptSubdomain"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
DOCKER_IMAGE = "docker-build:index:Image"
# `pulumi-python:dynamic:Resource`, or `pulumi-python:dynamic/<module>:<Name>` when the
# resource class names itself (pulumi.dynamic.Resource's `module=`/`name=` class arguments).
DYNAMIC_PREFIX = "pulumi-python:dynamic"
CONTAINER_APP_TYPES = ("pulumi-python:dynamic/moltworker:ContainerApp",)
# The Worker, its Sandbox Durable Object and its container application, deployed by wrangler
# (infra/dynamic/worker_deploy.py): bindings, vars and secret names are separate inputs.
WORKER_DEPLOY_TYPES = ("pulumi-python:dynamic/moltworker:WorkerDeploy",)
BUCKET_EMPTIER_TYPES = ("pulumi-python:dynamic/moltworker:BucketEmptier",)
# infra/dynamic/ names its classes, so the type token identifies them; an unnamed dynamic resource
# (the engine strips `__provider` from what policies see) is still told apart by its inputs, so a
# refactor that drops the names cannot switch these rules off.
CONTAINER_APP_KEYS = frozenset({"image", "max_instances", "class_name", "script_name"})
WORKER_DEPLOY_KEYS = frozenset({"script_name", "bindings", "vars", "secret_names"})
BUCKET_EMPTIER_KEYS = frozenset({"endpoint", "bucket", "access_key_id", "secret_access_key"})


def prop(props: Mapping[str, Any], *names: str) -> Any:
    """The first of `names` present in `props` (wire name first, then the Python name)."""
    for name in names:
        if name in props:
            return props[name]
    return None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> Iterator[Mapping[str, Any]]:
    """The mappings in a list-valued property (an absent list is empty)."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for item in value:
            if isinstance(item, Mapping):
                yield item


def is_worker_deploy(resource_type: str, props: Mapping[str, Any]) -> bool:
    if resource_type in WORKER_DEPLOY_TYPES:
        return True
    return resource_type.startswith(DYNAMIC_PREFIX) and set(props) >= WORKER_DEPLOY_KEYS


def is_container_app(resource_type: str, props: Mapping[str, Any]) -> bool:
    """A container application: the one the Worker deploy carries, or a stand-alone one."""
    if resource_type in CONTAINER_APP_TYPES or is_worker_deploy(resource_type, props):
        return True
    return resource_type.startswith(DYNAMIC_PREFIX) and set(props) >= CONTAINER_APP_KEYS


def is_worker(resource_type: str, props: Mapping[str, Any]) -> bool:
    """A resource that uploads a Worker with bindings (what the Worker rules read)."""
    return resource_type in WORKER_SCRIPTS or is_worker_deploy(resource_type, props)


def is_bucket_emptier(resource_type: str, props: Mapping[str, Any]) -> bool:
    if resource_type in BUCKET_EMPTIER_TYPES:
        return True
    return resource_type.startswith(DYNAMIC_PREFIX) and set(props) >= BUCKET_EMPTIER_KEYS


def worker_bindings(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every binding of a Worker resource, in the upload's shape ({name, type, text?}).

    A WorkersScript or WorkerVersion lists them in `bindings`; the wrangler deploy resource
    keeps plain-text vars in `vars` and secrets by name in `secret_names` (their values are
    secret inputs the pack has no need to read).
    """
    found = list(items(prop(props, "bindings")))
    for name, value in mapping(prop(props, "vars")).items():
        if isinstance(value, str):
            found.append({"name": name, "type": "plain_text", "text": value})
        else:  # wrangler uploads a non-string var as a json binding
            found.append({"name": name, "type": "json", "text": json.dumps(_plain(value))})
    names = prop(props, "secret_names")
    if isinstance(names, Sequence) and not isinstance(names, str | bytes):
        found += [{"name": n, "type": "secret_text"} for n in names if isinstance(n, str)]
    return found


def _plain(value: Any) -> Any:
    """A property value as plain JSON types (the policy SDK hands read-only proxies)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def binding_text(binding: Mapping[str, Any]) -> str | None:
    text = prop(binding, "text")
    return text if isinstance(text, str) else None


def json_object(value: Any) -> Mapping[str, Any] | None:
    """A token policy's `resources`: a JSON object in a string (provider v6) or a map."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None
