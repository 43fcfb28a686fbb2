"""The Worker, its container-enabled Durable Object and its container application, deployed by
the pinned `wrangler deploy` (docs/architecture.md: "Worker and sandbox: one wrangler deploy").

The resource's inputs are the stack's settings, one readable field each (bindings, vars, secret
names with a hash per value, module hashes, image fingerprint, instance type, ...), so a preview
shows what changes. Create and update render a wrangler config from them and run wrangler with
the token in its environment and the secrets in a 0600 `--secrets-file`; wrangler then sends the
requests it sends for any such Worker (script upload with migrations and `containers`, image
build and push, the application bound to the namespace, rollout, cron, route). Read and delete use
the `cloudflare` SDK. A diff without changes means no update, so an unchanged `pulumi up` sends no
mutating request at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime import rpc

from contract import INSTANCE_TYPES, OPENCLAW_REHEARSED_VAR
from infra.dynamic import cf

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_PERMISSION = "Workers Scripts Write"
CONTAINERS_PERMISSION = "Containers Write"
ROUTES_PERMISSION = "Workers Routes Write"  # custom domains (zone-level)
# Changing these makes a different Worker (or application): the old one is deleted first,
# because an application name is unique and stays bound to one Durable Object namespace.
REPLACE_KEYS = ("account_id", "script_name", "app_name")
# Every input that changes what is deployed. `secrets` is absent on purpose: its values are
# represented by `secret_hashes`, so the diff names the one secret that changed.
DEPLOY_KEYS = (
    "main_module",
    "modules",
    "compatibility_date",
    "compatibility_flags",
    "migrations",
    "bindings",
    "vars",
    "secret_hashes",
    "assets",
    "class_name",
    "dockerfile",
    "build_context",
    "image_vars",
    "image_fingerprint",
    "instance_type",
    "max_instances",
    "rollout_step_percentage",
    "cron",
    "workers_dev",
    "custom_domain",
    "zone_id",
)
# Binding types the renderer knows how to express in a wrangler config.
BINDING_TYPES = ("durable_object_namespace", "r2_bucket", "browser", "assets")
# Module rules for the JavaScript files of a bundle; wrangler's defaults already cover text,
# data and wasm (the other types infra/build.py lets in), and source maps travel through
# upload_source_maps.
MODULE_RULES = [
    {"type": "ESModule", "globs": ["**/*.js", "**/*.mjs"]},
    {"type": "CommonJS", "globs": ["**/*.cjs"]},
]
# Credentials wrangler would prefer over the stack's token if they were in the environment.
_FOREIGN_CREDENTIALS = ("CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL", "CF_API_TOKEN", "CF_API_KEY")
_DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{64}$")
_API_PATH = re.compile(r"/accounts/[^/\s)]+/([a-z_]+(?:/[a-z_]+)?)")
WRANGLER_TIMEOUT_S = 1800  # an image build on a cold cache takes minutes


def secret_hash(script_name: str, name: str, value: str) -> str:
    """What state keeps of a secret value: enough to see it change, useless to recover it.

    Every secret here is a generated token or a provider key (high entropy); the script and
    name are mixed in so equal values in two stacks or two names do not look alike.
    """
    digest = hashlib.sha256(f"moltworker-secret\0{script_name}\0{name}\0{value}".encode())
    return digest.hexdigest()[:24]


def _known(value: Any) -> bool:
    return value != rpc.UNKNOWN


def _path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def render_config(props: Mapping[str, Any], image: str) -> dict[str, Any]:
    """The wrangler config (JSON) for these inputs; `image` is a Dockerfile path or an image ref.

    Paths are absolute: the config is written to a temporary directory, not next to the sources.
    """
    bundle = _path(props["bundle_dir"])
    config: dict[str, Any] = {
        "name": props["script_name"],
        "main": str(bundle / props["main_module"]),
        "base_dir": str(bundle),
        "no_bundle": True,  # the bundle infra/build.py hashed is exactly what is uploaded
        "find_additional_modules": True,
        "rules": MODULE_RULES,
        "upload_source_maps": any(str(m).endswith(".map") for m in props["modules"]),
        "compatibility_date": props["compatibility_date"],
        "compatibility_flags": list(props["compatibility_flags"]),
        "observability": {"enabled": True},
        "workers_dev": bool(props["workers_dev"]),
        "preview_urls": False,
        "migrations": [dict(m) for m in props["migrations"]],
        "vars": dict(props["vars"]),
        "keep_vars": False,
        "triggers": {"crons": list(props["cron"])},
        "send_metrics": False,
    }
    durable_objects: list[dict[str, Any]] = []
    for binding in props["bindings"]:
        kind, name = binding["type"], binding["name"]
        if kind == "durable_object_namespace":
            durable_objects.append({"name": name, "class_name": binding["class_name"]})
        elif kind == "r2_bucket":
            config.setdefault("r2_buckets", []).append(
                {"binding": name, "bucket_name": binding["bucket_name"]}
            )
        elif kind == "browser":
            config["browser"] = {"binding": name}
        elif kind == "assets":
            assets = props["assets"]
            config["assets"] = {
                "directory": str(_path(assets["directory"])),
                "binding": name,
                "run_worker_first": bool(assets["run_worker_first"]),
            }
        else:
            raise ValueError(f"binding {name!r} has type {kind!r}, which this renderer lacks")
    config["durable_objects"] = {"bindings": durable_objects}
    config["containers"] = [
        {
            "name": props["app_name"],
            "class_name": props["class_name"],
            "image": image,
            "image_build_context": str(_path(props["build_context"])),
            "image_vars": dict(props["image_vars"]),
            "instance_type": props["instance_type"],
            "max_instances": int(props["max_instances"]),
            "rollout_step_percentage": int(props["rollout_step_percentage"]),
        }
    ]
    if props["custom_domain"]:
        config["routes"] = [
            {
                "pattern": props["custom_domain"],
                "custom_domain": True,
                "zone_id": props["zone_id"],
            }
        ]
    return config


@dataclass(frozen=True)
class WranglerRun:
    """What one wrangler run left behind: its ND-JSON output entries and its log tail."""

    entries: list[dict[str, Any]]
    log_tail: str

    def deploy_entry(self) -> dict[str, Any]:
        found = [e for e in self.entries if e.get("type") == "deploy"]
        return found[-1] if found else {}


class UnrehearsedUpgrade(Exception):
    """An OpenClaw version change that did not come through `ops upgrade`."""


def openclaw_version_of(props: Mapping[str, Any]) -> str | None:
    version = (props.get("image_vars") or {}).get("OPENCLAW_VERSION")
    return version if isinstance(version, str) else None


def refuse_unrehearsed_upgrade(
    olds: Mapping[str, Any], news: Mapping[str, Any], env: Mapping[str, str]
) -> None:
    """Stop an update that changes the deployed OpenClaw version without a rehearsal.

    In `update`, not `check`: a preview (a pull request's diff) still shows the change; only
    the deploy stops, before anything is sent.
    """
    before, after = openclaw_version_of(olds), openclaw_version_of(news)
    if before is None or after is None or before == after:
        return
    if env.get(OPENCLAW_REHEARSED_VAR) == after:
        return
    stack = news.get("stack") or "<stack>"
    raise UnrehearsedUpgrade(
        f"openclawVersion {before} -> {after} was not rehearsed on this stack; nothing was "
        f"deployed. Run `python -m ops upgrade --stack {stack} --to {after}`: it judges the "
        f"config with {after}, boots it on a copy of the state, keeps a snapshot and rolls "
        f"back by itself if {after} does not come up. To deploy it untested anyway, run this "
        f"`pulumi up` with {OPENCLAW_REHEARSED_VAR}={after}."
    )


class WranglerError(cf.CloudflareApiError):
    pass


def _redact(text: str, values: Sequence[str]) -> str:
    for value in sorted((v for v in values if len(v) >= 6), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text


def explain_wrangler_failure(text: str, action: str) -> str:
    """One sentence for a failed wrangler run: who refused what, and the fix.

    wrangler prints the failed request's path and the API's own error line
    (`<message> [code: <n>]`); the codes are the API's (10001: token not accepted, 10000: the
    token lacks a permission for that path, 971/10013 or a 429: rate limited).
    """
    paths = _API_PATH.findall(text)
    area = paths[-1] if paths else ""
    permission = SCRIPT_PERMISSION
    if area.startswith("containers"):
        permission = CONTAINERS_PERMISSION
    elif area.startswith("r2"):
        permission = "Workers R2 Storage Write"
    codes = {int(c) for c in re.findall(r"\[code: (\d+)\]", text)}
    lowered = text.lower()
    where = f" (/{area})" if area else ""
    if 10001 in codes or "unable to authenticate" in lowered:
        return (
            f"{action}: the API token was rejected (401{where}); it is wrong, expired or "
            "revoked: `pulumi config set --secret cloudflare:apiToken` (paste it at the prompt)"
        )
    if 10000 in codes or "forbidden" in lowered:
        return (
            f"{action}: the API token lacks the '{permission}' permission (403{where}); add it "
            "to the token in the dashboard (My Profile > API Tokens)"
        )
    if codes & {971, 10013} or "too many requests" in lowered or "rate limited" in lowered:
        return (
            f"{action}: still rate limited after wrangler's retries (429{where}); wait a "
            "minute and run `pulumi up` again"
        )
    return f"{action}: wrangler failed:\n{text}"


@dataclass
class WranglerRunner:
    """Runs the pinned wrangler with a clean, explicit environment; never through a shell."""

    extra_env: dict[str, str] = field(default_factory=dict)
    node: str | None = None

    def __call__(
        self,
        props: Mapping[str, Any],
        args: Sequence[str],
        workdir: Path,
        redact: Sequence[str],
    ) -> WranglerRun:
        wrangler = _path(props["wrangler"])
        node = self.node or shutil.which("node")
        if node is None:
            raise WranglerError("node is not on PATH; install Node 24 (wrangler runs on it)")
        output = workdir / "wrangler-output.ndjson"
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_CREDENTIALS}
        env.update(self.extra_env)
        env.update(
            CLOUDFLARE_API_TOKEN=props["api_token"],
            CLOUDFLARE_ACCOUNT_ID=props["account_id"],
            WRANGLER_OUTPUT_FILE_PATH=str(output),
            WRANGLER_LOG_PATH=str(workdir / "logs"),
            WRANGLER_SEND_METRICS="false",
            FORCE_COLOR="0",
        )
        try:
            result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
                [node, str(wrangler), *args],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=WRANGLER_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise WranglerError(
                f"wrangler {args[0]} did not finish in {WRANGLER_TIMEOUT_S} s; run `pulumi up` "
                "again (a first image build can be slow)"
            ) from None
        log = _redact(f"{result.stdout}\n{result.stderr}", [*redact, props["api_token"]])
        tail = "\n".join(line for line in log.strip().splitlines()[-25:])
        entries = []
        if output.exists():
            for line in output.read_text().splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        if result.returncode != 0:
            raise WranglerError(
                explain_wrangler_failure(tail, f"wrangler {args[0]} {props['script_name']!r}")
            )
        return WranglerRun(entries, tail)


def installed_wrangler_version(wrangler: Path) -> str | None:
    package = wrangler.parent.parent / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


class WorkerDeployProvider(ResourceProvider):
    def __init__(
        self,
        runner: WranglerRunner | None = None,
        http_client_factory: cf.HttpClientFactory | None = None,
    ) -> None:
        super().__init__()
        self.runner = runner or WranglerRunner()
        self.http_client_factory = http_client_factory

    # --- the SDK side ---------------------------------------------------------------------
    def _base_url(self) -> str | None:
        return self.runner.extra_env.get("CLOUDFLARE_API_BASE_URL") or os.environ.get(
            "CLOUDFLARE_API_BASE_URL"
        )

    def _client(self, props: Mapping[str, Any]) -> Any:
        return cf.client(
            props.get("api_token", ""), self.http_client_factory, base_url=self._base_url()
        )

    def _application(self, c: Any, props: Mapping[str, Any]) -> Any:
        with cf.api_call(
            f"list container applications for {props['app_name']!r}", CONTAINERS_PERMISSION
        ):
            apps = list(c.containers.applications.list(account_id=props["account_id"]))
        return next((a for a in apps if getattr(a, "name", None) == props["app_name"]), None)

    def _observe(self, props: Mapping[str, Any], run: WranglerRun) -> dict[str, Any]:
        """Outputs after a deploy: what wrangler reported plus the application as the API has it."""
        app = self._application(self._client(props), props)
        if app is None:
            raise WranglerError(
                f"wrangler deploy {props['script_name']!r} finished but the account has no "
                f"container application {props['app_name']!r}; check the dashboard (Containers) "
                "and run `pulumi up` again"
            )
        configuration = getattr(app, "configuration", None)
        image = str(getattr(configuration, "image", "") or "")
        durable_objects = getattr(app, "durable_objects", None)
        entry = run.deploy_entry()
        outs = {k: v for k, v in props.items() if k != "secrets"}
        outs.update(
            version_id=str(entry.get("version_id") or ""),
            application_id=str(app.id),
            namespace_id=str(getattr(durable_objects, "namespace_id", "") or ""),
            image=image,
        )
        return outs

    # --- wrangler -------------------------------------------------------------------------
    def _deploy(self, props: Mapping[str, Any], image: str) -> WranglerRun:
        secrets = {k: str(v) for k, v in dict(props.get("secrets") or {}).items()}
        with tempfile.TemporaryDirectory(prefix="moltworker-deploy-") as tmp:
            workdir = Path(tmp)
            os.chmod(workdir, 0o700)
            config_path = workdir / "wrangler.json"
            config_path.write_text(json.dumps(render_config(props, image), indent=2))
            secrets_path = workdir / "secrets.json"
            fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(secrets, f)
            return self.runner(
                props,
                ["deploy", "--config", str(config_path), "--secrets-file", str(secrets_path)],
                workdir,
                redact=list(secrets.values()),
            )

    # --- the provider protocol ------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        if news.get("instance_type") not in (*INSTANCE_TYPES, rpc.UNKNOWN):
            failures.append(
                CheckFailure("instance_type", f"must be one of {', '.join(INSTANCE_TYPES)}")
            )
        max_instances = news.get("max_instances")
        if _known(max_instances) and (
            isinstance(max_instances, bool)
            or not isinstance(max_instances, int | float)
            or not 1 <= int(max_instances) <= 10
        ):
            failures.append(CheckFailure("max_instances", "must be a whole number in 1..10"))
        for binding in news.get("bindings") or []:
            if isinstance(binding, dict) and binding.get("type") not in BINDING_TYPES:
                failures.append(
                    CheckFailure("bindings", f"{binding.get('name')!r}: unsupported type")
                )
        secrets = news.get("secrets")
        names = [*dict(news.get("vars") or {}), *dict(secrets or {})]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            failures.append(CheckFailure("vars", f"{dupes} given both as secret and var"))
        wrangler = news.get("wrangler")
        pinned = news.get("wrangler_version")
        if isinstance(wrangler, str) and isinstance(pinned, str):
            installed = installed_wrangler_version(_path(wrangler))
            if installed != pinned:
                failures.append(
                    CheckFailure(
                        "wrangler",
                        f"wrangler {installed or 'is not installed'} at {wrangler}, the pin is "
                        f"{pinned}: run `npm ci` in the Worker directory",
                    )
                )
        # The hash stands for each secret value in the diff; an unknown value (a token not
        # created yet in a preview) has an unknown hash.
        if isinstance(secrets, dict):
            script = news.get("script_name", "")
            news = dict(news)
            news["secret_hashes"] = {
                name: secret_hash(str(script), name, str(value)) if _known(value) else rpc.UNKNOWN
                for name, value in sorted(secrets.items())
            }
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in (*REPLACE_KEYS, *DEPLOY_KEYS) if olds.get(k) != news.get(k)]
        if olds.get("api_token") != news.get("api_token"):
            changed.append("api_token")
        replaces = [k for k in changed if k in REPLACE_KEYS]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces)
        )

    def _refuse_foreign(self, props: Mapping[str, Any]) -> None:
        """Stop a create that would overwrite a Worker or application this stack did not make.

        wrangler deploys over whatever carries the name. On a stack made by the old deploy
        path the live script and application are still in the state under their old resources,
        which the same `pulumi up` deletes after this create (the engine deletes removed
        resources last, docs/architecture.md "Upgrading a stack from the old deploy path"): an
        error here ends the update before any of those deletes.
        """
        if props.get("adopt"):
            return
        c = self._client(props)
        account, script = props["account_id"], props["script_name"]
        try:
            c.workers.scripts.script_and_version_settings.get(script, account_id=account)
            found = [f"Worker {script!r}"]
        except Exception as exc:
            if not cf.is_not_found(exc):
                if isinstance(exc, cf.cloudflare.APIError):
                    raise cf.explain(exc, f"look up Worker {script}", SCRIPT_PERMISSION) from None
                raise
            found = []
        if self._application(c, props) is not None:
            found.append(f"container application {props['app_name']!r}")
        if found:
            stack = props.get("stack") or "<stack>"
            raise WranglerError(
                f"{' and '.join(found)} already exist(s) on account {account} and this stack did "
                "not create it; nothing was deployed or deleted. If it is this stack's own Worker "
                "(from the old deploy path, or left by a first `pulumi up` that failed part-way), "
                f"run `python -m ops adopt --stack {stack}` (it removes old resources from the "
                "state without deleting anything and lets the next `pulumi up` take the Worker "
                "over); otherwise choose another `moltworker:workerName`"
            )

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._refuse_foreign(props)
        run = self._deploy(props, props["dockerfile"])
        outs = self._observe(props, run)
        return CreateResult(f"{props['account_id']}/{props['script_name']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        refuse_unrehearsed_upgrade(olds, news, os.environ)
        if not any(olds.get(k) != news.get(k) for k in DEPLOY_KEYS):
            # Only the API token changed: remember it, send nothing.
            outs = {k: v for k, v in news.items() if k != "secrets"}
            for key in ("version_id", "application_id", "namespace_id", "image"):
                outs[key] = olds.get(key, "")
            return UpdateResult(outs)
        deployed = str(olds.get("image") or "")
        # An unchanged build keeps the image already deployed (no build, no rollout); a changed
        # one is built and pushed by wrangler, which then rolls the application out once.
        same_build = all(
            olds.get(k) == news.get(k)
            for k in ("image_fingerprint", "dockerfile", "build_context", "image_vars")
        )
        image = deployed if same_build and _DIGEST_REF.search(deployed) else news["dockerfile"]
        run = self._deploy(news, image)
        # --secrets-file keeps secrets it does not name, so a secret dropped from the stack
        # is deleted explicitly.
        removed = sorted(
            set(olds.get("secret_hashes") or {}) - set(news.get("secret_hashes") or {})
        )
        if removed:
            c = self._client(news)
            for name in removed:
                try:
                    c.workers.scripts.secrets.delete(
                        name, account_id=news["account_id"], script_name=news["script_name"]
                    )
                except Exception as exc:
                    if cf.is_not_found(exc):
                        continue
                    if isinstance(exc, cf.cloudflare.APIError):
                        raise cf.explain(
                            exc, f"delete Worker secret {name}", SCRIPT_PERMISSION
                        ) from None
                    raise
        if olds.get("custom_domain") and olds.get("custom_domain") != news.get("custom_domain"):
            # wrangler publishes the custom domains a config names and never removes one it
            # no longer names (a switch back to workers.dev sends no domain request at all).
            self._detach_domains(news, keep=str(news.get("custom_domain") or ""))
        return UpdateResult(self._observe(news, run))

    def _detach_domains(self, props: Mapping[str, Any], keep: str = "") -> None:
        """Remove the script's custom domains other than `keep` (the DNS record goes with each)."""
        c = self._client(props)
        account, script = props["account_id"], props["script_name"]
        with cf.api_call(f"list the custom domains of {script}", SCRIPT_PERMISSION):
            domains = list(c.workers.domains.list(account_id=account, service=script))
        for domain in domains:
            if domain.hostname == keep or domain.service != script:
                continue
            try:
                c.workers.domains.delete(domain.id, account_id=account)
            except Exception as exc:
                if cf.is_not_found(exc):
                    continue
                if isinstance(exc, cf.cloudflare.APIError):
                    raise cf.explain(
                        exc, f"remove the custom domain {domain.hostname}", ROUTES_PERMISSION
                    ) from None
                raise

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        c = self._client(props)
        account, script = props["account_id"], props["script_name"]
        try:
            settings = c.workers.scripts.script_and_version_settings.get(script, account_id=account)
        except Exception as exc:
            if cf.is_not_found(exc):
                return ReadResult("", {})
            if isinstance(exc, cf.cloudflare.APIError):
                raise cf.explain(exc, f"read Worker {script}", SCRIPT_PERMISSION) from None
            raise
        outs = dict(props)
        live = [_as_dict(b) for b in getattr(settings, "bindings", None) or []]
        outs["bindings"] = sorted(
            (
                {k: v for k, v in b.items() if k in ("name", "type", "class_name", "bucket_name")}
                for b in live
                if b.get("type") in BINDING_TYPES
            ),
            key=lambda b: str(b.get("name")),
        )
        outs["vars"] = dict(
            sorted((b["name"], b.get("text", "")) for b in live if b.get("type") == "plain_text")
        )
        live_secrets = {b["name"] for b in live if b.get("type") == "secret_text"}
        known = dict(props.get("secret_hashes") or {})
        # A secret's value cannot be read back: a name still there keeps its hash, a missing one
        # drops out (and is sent again), one set by hand shows up as unknown.
        outs["secret_hashes"] = {
            name: known.get(name, "set outside this stack") for name in sorted(live_secrets)
        }
        outs["compatibility_date"] = getattr(settings, "compatibility_date", None) or props.get(
            "compatibility_date"
        )
        outs["compatibility_flags"] = list(getattr(settings, "compatibility_flags", None) or [])
        try:
            app = c.containers.applications.get(props["application_id"], account_id=account)
        except Exception as exc:
            if not cf.is_not_found(exc):
                if isinstance(exc, cf.cloudflare.APIError):
                    raise cf.explain(
                        exc,
                        f"read container application {props['app_name']}",
                        CONTAINERS_PERMISSION,
                    ) from None
                raise
            app = None
        if app is None:
            outs.update(application_id="", image="", instance_type="", max_instances=0)
        else:
            configuration = getattr(app, "configuration", None)
            outs["image"] = str(getattr(configuration, "image", "") or "")
            outs["instance_type"] = getattr(configuration, "instance_type", None) or ""
            outs["max_instances"] = getattr(app, "max_instances", None) or 0
        with cf.api_call(f"read the cron triggers of {script}", SCRIPT_PERMISSION):
            schedules = c.workers.scripts.schedules.get(script, account_id=account)
        outs["cron"] = [s.cron for s in getattr(schedules, "schedules", None) or [] if s.cron]
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        c = self._client(props)
        account, script = props["account_id"], props["script_name"]
        # The application first: it is bound to the script's namespace. The R2 bucket is not
        # this resource's: deleting the Worker never touches the agent's data.
        app_id = props.get("application_id") or getattr(self._application(c, props), "id", "")
        if app_id:
            try:
                c.containers.applications.delete(app_id, account_id=account)
            except Exception as exc:
                if not cf.is_not_found(exc):
                    if isinstance(exc, cf.cloudflare.APIError):
                        raise cf.explain(
                            exc, f"delete container application {app_id}", CONTAINERS_PERMISSION
                        ) from None
                    raise
        if props.get("custom_domain"):
            self._detach_domains(props)
        try:
            c.workers.scripts.delete(script, account_id=account, force=True)
        except Exception as exc:
            if cf.is_not_found(exc):
                return
            if isinstance(exc, cf.cloudflare.APIError):
                raise cf.explain(exc, f"delete Worker {script}", SCRIPT_PERMISSION) from None
            raise


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    return dict(getattr(value, "__dict__", {}))


class WorkerDeploy(Resource, module="moltworker", name="WorkerDeploy"):
    version_id: pulumi.Output[str]
    application_id: pulumi.Output[str]
    namespace_id: pulumi.Output[str]
    image: pulumi.Output[str]
    secret_hashes: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        props: Mapping[str, Any],
        *,
        secrets: Mapping[str, pulumi.Input[str]],
        api_token: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = dict(props)
        inputs["secrets"] = pulumi.Output.secret(
            pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in secrets.items()})
        )
        inputs["api_token"] = pulumi.Output.secret(api_token)
        inputs["secret_hashes"] = None  # filled in by the provider's check
        for key in ("version_id", "application_id", "namespace_id", "image"):
            inputs[key] = None
        super().__init__(
            WorkerDeployProvider(),
            name,
            inputs,
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["api_token", "secrets"])
            ),
        )
