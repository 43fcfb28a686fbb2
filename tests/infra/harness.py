"""Run the whole Pulumi program under mocks and get back every resource it registered.

    from tests.infra.harness import run_program
    resources = run_program("prod", {"maxInstances": "2"})

Reusable by the policy-pack tests: each call installs fresh mocks, a fresh root stack and the
stack's config (the example `Pulumi.<stack>.yaml` with test secrets substituted), so calling it
repeatedly in one process is safe (Pulumi's runtime state is process-global).

The mocks answer like the real providers would: inputs are echoed and the computed outputs
(token values, AUD, image digest, ...) are derived deterministically from the resource name and
inputs, so two runs with the same config give identical inputs (the no-perpetual-diff check).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import json
import logging
import runpy
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings

import contract

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "moltworker"
SECRET_SIG = rpc._special_sig_key  # the wire marker of a secret value
SECRET_VALUE = rpc._special_secret_sig
# infra/dynamic/ names its resource classes (pulumi.dynamic.Resource's module=/name=), so the
# type token says which provider a dynamic resource belongs to.
DYNAMIC_KINDS = {
    "pulumi-python:dynamic/moltworker:WorkerDeploy": "worker-deploy",
    "pulumi-python:dynamic/moltworker:BucketEmptier": "bucket-emptier",
}

# Test values for every secret key; distinctive so a leak is easy to find in any input.
TEST_SECRETS: dict[str, str] = {
    "cloudflare:apiToken": "TEST-cf-api-token-0123456789abcdef",
    f"{PROJECT}:anthropicApiKey": "sk-ant-TEST-anthropic-key",
    f"{PROJECT}:openaiApiKey": "sk-TEST-openai-key",
    f"{PROJECT}:telegramBotToken": "123456:TEST-telegram-token",
    f"{PROJECT}:discordBotToken": "TEST-discord-token",
    f"{PROJECT}:slackBotToken": "xoxb-TEST-slack-bot",
    f"{PROJECT}:slackAppToken": "xapp-TEST-slack-app",
}
TEAM_DOMAIN = "test-team.cloudflareaccess.com"


def _fake(kind: str, *parts: object, length: int = 32) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"{kind}{digest[:length]}"


def unwrap(value: Any) -> Any:
    """Inputs with secret markers removed (values kept)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string *not* inside a secret marker."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return
        for k, v in value.items():
            if k == "__provider":  # the pickled dynamic provider, not a resource property
                continue
            yield from plain_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def is_secret_at(value: Any, *path: str | int) -> bool:
    """Whether the value at `path` (or one of its parents) is wrapped as a secret."""
    for key in path:
        if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE:
            return True
        value = value[key]  # type: ignore[index]
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]  # as registered: secret values wrapped in Pulumi's secret marker
    outputs: dict[str, Any]
    protect: bool
    parent: str
    dependencies: list[str]
    custom: bool
    additional_secret_outputs: list[str] = field(default_factory=list)

    @property
    def plain(self) -> dict[str, Any]:
        return unwrap(self.inputs)

    @property
    def dynamic_kind(self) -> str | None:
        return DYNAMIC_KINDS.get(self.type)


@dataclass
class ProgramRun:
    resources: list[RecordedResource]
    outputs: dict[str, Any]  # export name -> {"value": ..., "secret": bool}
    warnings: list[str]
    config: dict[str, str]
    secret_keys: list[str]

    def by_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.by_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.urn for r in found]}"
        return found[0]

    def dynamic(self, kind: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.dynamic_kind == kind]


class ProgramMocks(pulumi.runtime.Mocks):
    """Provider answers keyed by type token, deterministic in name and inputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        t, name, inputs = args.typ, args.name, dict(args.inputs)
        plain = unwrap(inputs)
        outs = dict(inputs)
        rid = f"{name}-id"
        if t == "random:index/randomPassword:RandomPassword":
            outs["result"] = _fake("gen-", name, plain.get("keepers"), length=int(plain["length"]))
        elif t == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(f"bytes|{name}".encode()).digest()[: int(plain["length"])]
            outs["base64"] = base64.b64encode(raw).decode()
            outs["hex"] = raw.hex()
        elif t == "cloudflare:index/accountToken:AccountToken":
            rid = _fake("tokid", name)
            outs["value"] = _fake("tokval-", name, plain.get("policies"), length=40)
        elif t == "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication":
            outs["aud"] = _fake("", "aud", name, length=64)
            rid = _fake("app", name)
        elif t == "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken":
            outs["clientId"] = _fake("", "cid", name) + ".access"
            outs["clientSecret"] = _fake("csec-", name, length=64)
        elif t == "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy":
            rid = _fake("pol", name)
        elif t in DYNAMIC_KINDS:
            kind = DYNAMIC_KINDS[t]
            if kind == "worker-deploy":
                # What wrangler's deploy leaves: a version, the application bound to the
                # namespace, the image it pushed (repository@digest).
                digest = _fake("", plain["image_fingerprint"], length=64)
                outs["version_id"] = _fake("", "version", plain["modules"], plain["vars"])
                outs["application_id"] = _fake("", "app", plain["app_name"])
                outs["namespace_id"] = _fake("", "ns", plain["script_name"])
                outs["image"] = (
                    f"registry.cloudflare.com/{plain['account_id']}/{plain['app_name']}"
                    f"@sha256:{digest}"
                )
                outs.pop("secrets", None)
            rid = f"{name}-{kind}"
        return rid, outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        token = args.token
        if token.endswith("getAccountApiTokenPermissionGroupsList"):
            wanted = unquote(args.args.get("name") or "")
            scope = unquote(args.args.get("scope") or "")
            # Near-miss decoys make sure the program selects by exact name.
            names = [wanted, f"{wanted} (legacy)", wanted.replace("Write", "Read")]
            # Cloudflare's ids are global: where the contract records the published one, the
            # mocked account answers it, as a real one does.
            published = {g.name: g.published_id for g in contract.PERMISSION_GROUPS}
            results = [
                {
                    "id": published.get(n) or _fake("pg", n),
                    "name": n,
                    "category": "developer_platform",
                    "isSelectable": True,
                    "scopes": [scope],
                }
                for n in dict.fromkeys(names)
            ]
            return {"accountId": args.args.get("accountId"), "results": results}, []
        if token.endswith("getZeroTrustOrganization"):
            return {"accountId": args.args.get("accountId"), "authDomain": TEAM_DOMAIN}, []
        raise AssertionError(f"the program called an unmocked data source {token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: ProgramMocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.requests[response.urn] = (request, rpc.deserialize_properties(response.object))
        return response


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_FIXTURES: Path | None = None


def fixtures() -> Path:
    """A small Worker source tree, a prebuilt bundle and an image build context.

    The program is run against these rather than worker/ and container/ so its tests do not
    need wrangler, node_modules or the colleagues' in-progress trees, and stay deterministic.
    """
    global _FIXTURES
    if _FIXTURES is None:
        root = Path(tempfile.mkdtemp(prefix="moltworker-infra-fixtures-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        (root / "worker" / "src").mkdir(parents=True)
        (root / "worker" / "public").mkdir()
        (root / "worker" / "src" / "index.ts").write_text("export default {};\n")
        (root / "worker" / "public" / "index.html").write_text("<h1>admin</h1>\n")
        (root / "worker" / "wrangler.jsonc").write_text(
            '{\n  // fixture\n  "compatibility_date": "2026-08-15",\n'
            '  "compatibility_flags": ["nodejs_compat"],\n'
            '  "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Sandbox"] }],\n}\n'
        )
        pin = json.loads((ROOT / "worker" / "package.json").read_text())["devDependencies"]
        (root / "worker" / "package.json").write_text(
            json.dumps({"devDependencies": {"wrangler": pin["wrangler"]}})
        )
        (root / "bundle").mkdir()
        (root / "bundle" / "index.js").write_text("export default { fetch() {} };\n")
        (root / "container").mkdir()
        (root / "container" / "Dockerfile").write_text("FROM scratch\nARG OPENCLAW_VERSION\n")
        (root / "container" / "entry.py").write_text("print('sandbox')\n")
        _FIXTURES = root
    return _FIXTURES


def stack_config(stack: str) -> dict[str, str]:
    """The example stack file's config as Pulumi hands it to a program (strings, JSON arrays)."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    config: dict[str, str] = {}
    for key, value in (data.get("config") or {}).items():
        if isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, list | dict):
            config[key] = json.dumps(value)
        else:
            config[key] = str(value)
    return config


def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def run_program_full(
    stack: str,
    config_overrides: Mapping[str, str | None] | None = None,
    *,
    plaintext: tuple[str, ...] = (),
    use_fixtures: bool = True,
) -> ProgramRun:
    """Run __main__.py for `stack` under fresh mocks.

    config_overrides: key (with or without the `moltworker:` prefix) -> value, or None to unset.
    plaintext: secret keys to hand over as plain text (to test that the program refuses them).
    """
    config = stack_config(stack)
    config.update(TEST_SECRETS)
    if use_fixtures:
        fx = fixtures()
        config[f"{PROJECT}:workerDir"] = str(fx / "worker")
        config[f"{PROJECT}:workerBundleDir"] = str(fx / "bundle")
        config[f"{PROJECT}:containerDir"] = str(fx / "container")
    for key, value in (config_overrides or {}).items():
        if value is None:
            config.pop(_full_key(key), None)
        else:
            config[_full_key(key)] = value
    plaintext_full = {_full_key(k) for k in plaintext}
    secret_keys = [k for k in TEST_SECRETS if k in config and k not in plaintext_full]
    pulumi.runtime.set_all_config(config, secret_keys)

    resources, exported, warnings = run_under_mocks(
        lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi_program__"),
        stack=stack,
    )
    return ProgramRun(resources, exported, warnings, config, secret_keys)


def run_under_mocks(
    build: Callable[[], object], stack: str = "test"
) -> tuple[list[RecordedResource], dict[str, Any], list[str]]:
    """Run `build` (a program or a single component) under fresh mocks; record what it made.

    Returns (resources, stack exports as {name: {"value", "secret"}}, warnings logged).
    """
    mocks = ProgramMocks()
    monitor = RecordingMonitor(mocks)
    capture = _Capture()
    logger = logging.getLogger(f"moltworker-harness-{id(monitor)}")
    logger.addHandler(capture)
    logger.propagate = False
    # A fresh root stack per run: otherwise the previous run's stack (and outputs) is reused.
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor
    )
    exported: dict[str, Any] = {}

    async def resolve(name: str, value: Any) -> None:
        output = pulumi.Output.from_input(value)
        exported[name] = {"value": await output.future(), "secret": await output.is_secret()}

    @pulumi.runtime.test
    def program() -> Any:
        build()
        root = pulumi_settings.get_root_resource()
        outputs = dict(getattr(root, "outputs", {}))
        return asyncio.gather(*(resolve(k, v) for k, v in outputs.items()))

    program()
    resources = [
        RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            inputs=rpc.deserialize_properties(request.object),
            outputs=outputs,
            protect=bool(request.protect),
            parent=request.parent,
            dependencies=list(request.dependencies),
            custom=bool(request.custom),
            additional_secret_outputs=list(request.additionalSecretOutputs),
        )
        for urn, (request, outputs) in monitor.requests.items()
    ]
    return resources, exported, capture.messages


def run_program(
    stack: str, config_overrides: Mapping[str, str | None] | None = None
) -> list[RecordedResource]:
    """The resources `pulumi up` would register for an example stack (see run_program_full)."""
    return run_program_full(stack, config_overrides).resources
