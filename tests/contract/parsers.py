"""Every parser of a shared rule behind one signature: `value -> Verdict`.

Each adapter drives the part's public entry point (the program run under mocks, the policy
validators, the ops commands, the runtime's settings loader, the Worker's own code bundled and
run in Node), so a row of the drift table is judged by what a user would meet, not by a regex
copied into the test.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
from pulumi_policy import ResourceValidationArgs
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions

from tests.infra.harness import ROOT, TEST_SECRETS, fixtures, run_under_mocks, stack_config


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    # What the accepted value means where parts must agree on more than yes/no (a flag's
    # value, a number); None when refused.
    meaning: Any = None
    why: str = ""


Parser = Callable[[str], Verdict]


# --- the program (settings + components), run as `pulumi preview` runs it ------------------


def _set_config(overrides: dict[str, str | None]) -> None:
    """The dev example's config, the test secrets and the fixture trees, plus `overrides`."""
    config = stack_config("dev")
    config.update(TEST_SECRETS)
    fx = fixtures()
    config["moltworker:workerDir"] = str(fx / "worker")
    config["moltworker:workerBundleDir"] = str(fx / "bundle")
    config["moltworker:containerDir"] = str(fx / "container")
    for key, value in overrides.items():
        full = key if ":" in key else f"moltworker:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value
    pulumi.runtime.set_all_config(config, [k for k in TEST_SECRETS if k in config])


def program(overrides: dict[str, str | None], stack: str = "dev") -> Verdict:
    """Run __main__.py under mocks with the dev example's config plus `overrides`."""
    _set_config(overrides)
    try:
        run_under_mocks(
            lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi_program__"),
            stack=stack,
        )
    except Exception as exc:  # SettingsError, or a component's ValueError
        return Verdict(False, why=str(exc))
    return Verdict(True)


def program_settings(overrides: dict[str, str | None], stack: str = "dev") -> Any:
    """The program's typed settings for the dev config plus `overrides` (raises when refused)."""
    from infra import settings

    _set_config(overrides)
    return settings.load(pulumi.Config("moltworker"), stack, warn=lambda _m: None)


def program_key(key: str, **fixed: str) -> Parser:
    return lambda value: program({**fixed, key: value})


# --- the policy pack -------------------------------------------------------------------------

DEPLOY = "pulumi-python:dynamic/moltworker:WorkerDeploy"


def _deploy_props(**extra: Any) -> dict[str, Any]:
    from policies import resources as r

    props: dict[str, Any] = dict.fromkeys(r.WORKER_DEPLOY_KEYS, "")
    props.update(
        {
            "dockerfile": "container/Dockerfile",
            "image_vars": {},
            "max_instances": 1,
            "instance_type": "standard-1",
        }
    )
    props.update(extra)
    return props


_OPTIONS = PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _run_rule(rule: Callable[..., None], props: dict[str, Any], config: dict[str, Any]) -> Verdict:
    from policies.stack_profile import StackProfile

    found: list[str] = []
    args = ResourceValidationArgs(
        DEPLOY, props, "urn:pulumi:dev::moltworker::deploy", "deploy", _OPTIONS, None, config
    )
    rule(args, lambda message, _urn=None: found.append(message), StackProfile.of("m", "dev"))
    return Verdict(not found, why="; ".join(found))


def policy_version(value: str) -> Verdict:
    from policies.rules.container import pinned_versions

    return _run_rule(pinned_versions, _deploy_props(image_vars={"OPENCLAW_VERSION": value}), {})


def policy_max_instances_at_widest_bound(value: str) -> Verdict:
    """container-bounded with its bound raised as far as the pack config allows."""
    from policies.rules import container

    widest = getattr(container, "MAX_INSTANCES_BOUND", 10)
    try:
        number: Any = json.loads(value)
    except json.JSONDecodeError:
        number = value
    rule = container.container_bounded
    return _run_rule(rule, _deploy_props(max_instances=number), {"maxInstances": widest})


def policy_profile(stack: str, config: dict[str, str]) -> Any:
    from policies.stack_profile import StackProfile

    pulumi.runtime.set_all_config({f"moltworker:{k}": v for k, v in config.items()}, [])
    pulumi.runtime.set_mocks(_NoMocks(), project="moltworker", stack=stack, preview=True)
    return StackProfile.from_runtime()


class _NoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        raise AssertionError("the policy profile registers no resources")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        raise AssertionError("the policy profile calls no data source")


# --- ops -------------------------------------------------------------------------------------


def _console() -> Any:
    from ops.errors import Console, Redactor

    return Console(Redactor(), out=io.StringIO(), err=io.StringIO())


def ops_stack_name(value: str) -> Verdict:
    from ops.errors import OpsError
    from ops.pulumi_cli import check_stack_name

    try:
        check_stack_name(value)
    except OpsError as exc:
        return Verdict(False, why=str(exc))
    return Verdict(True)


def ops_review_template(template: str) -> Verdict:
    """`ops review create --template <name>`: refused for a production (or review) template."""
    from ops.errors import OpsError
    from ops.review import create
    from tests.ops.ops_fakes import MemoryPulumi, MemoryStack

    pulumi_ = MemoryPulumi({template: MemoryStack(config={})})
    try:
        create(pulumi_, 5, template, _console())
    except OpsError as exc:
        return Verdict(False, why=str(exc))
    return Verdict(True)


def ops_destroys_as_ephemeral(value: str | None) -> Verdict:
    """`ops review destroy pr-7` for a deployed config whose ephemeral flag is `value`."""
    from ops.errors import OpsError
    from ops.review import destroy
    from tests.ops.ops_fakes import MemoryPulumi, MemoryStack

    config = {} if value is None else {"moltworker:ephemeral": value}
    pulumi_ = MemoryPulumi({"pr-7": MemoryStack(config=dict(config), deployed_config=config)})
    try:
        destroy(pulumi_, "pr-7", _console())
    except OpsError as exc:
        return Verdict(True, False, why=str(exc))
    return Verdict(True, True)


# --- the sandbox runtime ---------------------------------------------------------------------

# What the deployed Worker hands the container (the AI Gateway is always configured).
RUNTIME_ENV = {
    "OPENCLAW_GATEWAY_TOKEN": "g" * 32,
    "MOLT_CONTROL_SECRET": "c" * 40,
    "MOLT_STATE_DIR": "/data/state",
    "MOLT_RUNTIME_DIR": "/tmp/molt-runtime-drift",
    "AI_GATEWAY_BASE_URL": "https://gateway.ai.cloudflare.com/v1/acct/moltworker-dev",
    "AI_GATEWAY_TOKEN": "t" * 40,
}


def runtime_settings(env: dict[str, str]) -> Verdict:
    from sandbox_runtime.settings import ConfigError, load_settings

    try:
        settings = load_settings({**RUNTIME_ENV, **env})
    except ConfigError as exc:
        return Verdict(False, why=str(exc))
    return Verdict(True, settings)


def runtime_var(name: str, attribute: str | None = None, **fixed: str) -> Parser:
    def parse(value: str) -> Verdict:
        verdict = runtime_settings({**fixed, name: value})
        if not verdict.accepted or attribute is None:
            return Verdict(verdict.accepted, why=verdict.why)
        return Verdict(True, getattr(verdict.meaning, attribute))

    return parse


def runtime_snapshot_keep(value: str) -> Verdict:
    from sandbox_runtime.snapshots import ConfigError, keep_from_env

    try:
        return Verdict(True, keep_from_env({"MOLT_SNAPSHOT_KEEP": value}))
    except ConfigError as exc:
        return Verdict(False, why=str(exc))


def runtime_snapshot_debounce(value: str) -> Verdict:
    from sandbox_runtime.snapshots import ConfigError, debounce_from_env

    try:
        return Verdict(True, debounce_from_env({"MOLT_SNAPSHOT_DEBOUNCE_S": value}))
    except ConfigError as exc:
        return Verdict(False, why=str(exc))


# --- the Worker (TypeScript): its own module bundled with the pinned esbuild, run in Node ----

WORKER = ROOT / "worker"


def _node() -> str:
    return json.loads((ROOT / ".cache" / "tools.json").read_text())["node"]


@cache
def _worker_module() -> Path:
    out = Path(tempfile.mkdtemp(prefix="moltworker-drift-")) / "container-env.mjs"
    subprocess.run(
        [
            str(WORKER / "node_modules" / ".bin" / "esbuild"),
            str(WORKER / "src" / "container-env.ts"),
            "--bundle",
            "--format=esm",
            "--platform=neutral",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        check=True,
        cwd=WORKER,
        env={**os.environ, "PATH": f"{Path(_node()).parent}:{os.environ.get('PATH', '')}"},
    )
    return out


def worker_sleep_after_all(values: Iterable[str]) -> dict[str, Verdict]:
    """parseSleepAfter of the Worker's own source over every value, in one Node process."""
    script = (
        f"import {{ parseSleepAfter }} from {json.dumps(_worker_module().as_uri())};\n"
        "const values = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(values.map((v) => parseSleepAfter(v))));\n"
    )
    values = list(values)
    result = subprocess.run(
        [_node(), "--input-type=module", "-e", script, json.dumps(values)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    verdicts: dict[str, Verdict] = {}
    for value, parsed in zip(values, json.loads(result.stdout), strict=True):
        if isinstance(parsed, dict) and "error" in parsed:
            verdicts[value] = Verdict(False, why=parsed["error"])
        else:
            seconds = None if parsed == "never" else parsed["seconds"]
            verdicts[value] = Verdict(True, seconds)
    return verdicts
