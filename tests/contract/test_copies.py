"""Every copy of a contract value is the contract's value, and every default is declared once.

The Python parts import `contract`; these tests make sure they use its objects rather than
copies. The runtime (shipped alone in the image) and the Worker (TypeScript) keep copies where
the boundary forces it; each is compared here, values and order included. Pulumi.yaml declares
every key's type and default for the CLI; it must say what contract.DEFAULTS says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import contract

ROOT = Path(__file__).resolve().parents[2]
ENV_TS = ROOT / "worker" / "src" / "env.ts"
CONTAINER_ENV_TS = ROOT / "worker" / "src" / "container-env.ts"


def ts_list(path: Path, name: str) -> list[str]:
    match = re.search(rf"export const {name} = \[(.*?)\] as const;", path.read_text(), re.S)
    assert match, f"{path} no longer declares {name} as a const array"
    return re.findall(r'"([A-Z0-9_]+)"', match.group(1))


def ts_const(path: Path, name: str) -> str:
    match = re.search(rf"export const {name} = (.+?);\n", path.read_text())
    assert match, f"{path} no longer declares {name}"
    return match.group(1)


# --- the Python parts use the contract's own objects ------------------------------------------


def test_program_pack_and_ops_use_the_contracts_objects() -> None:
    from infra import permissions, sandbox, settings
    from infra.dynamic import worker_deploy
    from ops import pulumi_cli
    from policies.rules import container
    from policies.stack_profile import PRODUCTION_STACK

    assert settings.INSTANCE_TYPES is contract.INSTANCE_TYPES
    assert worker_deploy.INSTANCE_TYPES is contract.INSTANCE_TYPES
    assert sandbox.INSTANCE_TYPES is contract.INSTANCE_TYPES
    assert sandbox.MAX_INSTANCES is contract.MAX_INSTANCES
    assert settings.PROD_STACK is contract.PRODUCTION_STACK
    assert PRODUCTION_STACK is contract.PRODUCTION_STACK
    assert container.EXACT_VERSION is contract.EXACT_VERSION
    assert contract.MAX_INSTANCES.hi == container.MAX_INSTANCES_BOUND
    assert settings.ROTATABLE is contract.ROTATABLE
    assert settings.DM_POLICIES is contract.DM_POLICIES
    assert pulumi_cli.PROJECT == settings.PROJECT == contract.PROJECT
    assert contract.R2_BUCKET_ITEM_WRITE.name == permissions.R2_BUCKET_ITEM_WRITE
    assert contract.AI_GATEWAY_RUN.name == permissions.AI_GATEWAY_RUN


def test_ops_rotations_are_the_contracts_rotatable_secrets() -> None:
    from ops.rotate import ROTATIONS

    assert [r.name for r in ROTATIONS.values()] == list(contract.ROTATABLE)
    for rotation in ROTATIONS.values():
        assert rotation.config_key == f"{contract.PROJECT}:{contract.rotate_key(rotation.name)}"


def test_the_pack_allows_on_a_bucket_exactly_the_groups_the_program_requests() -> None:
    from policies.rules import RULES
    from policies.rules.tokens import BUCKET_GROUP_IDS

    bucket_groups = [g for g in contract.PERMISSION_GROUPS if g.scope == contract.R2_BUCKET_SCOPE]
    assert [g.name for g in bucket_groups] == ["Workers R2 Storage Bucket Item Write"]
    assert set(BUCKET_GROUP_IDS) == {g.published_id for g in bucket_groups}
    (tokens,) = [rule for rule in RULES if rule.name == "tokens-scoped"]
    assert tokens.config is not None
    schema = tokens.config.properties["r2PermissionGroupIds"]
    assert schema["default"] == sorted(BUCKET_GROUP_IDS)


def test_the_program_refuses_a_bucket_group_id_other_than_the_published_one() -> None:
    from infra import permissions
    from tests.infra import harness

    published = contract.R2_BUCKET_ITEM_WRITE.published_id
    original = harness.ProgramMocks.call

    def other_id(self: Any, args: Any) -> tuple[dict, list]:
        answer, deps = original(self, args)
        for group in answer.get("results", []):
            if group.get("id") == published:
                group["id"] = "0" * 32
        return answer, deps

    harness.ProgramMocks.call = other_id  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError, match="not the published 2efd5506f9c8494dacb1fa10a3e7d5b6"):
            harness.run_program_full("dev")
    finally:
        harness.ProgramMocks.call = original  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"not in contract\.PERMISSION_GROUPS"):
        permissions.permission_group_id("0" * 32, "Workers R2 Storage Bucket Item Read", "x")


# --- the runtime's copies ---------------------------------------------------------------------


def test_the_runtimes_copies_are_the_contracts_values() -> None:
    from sandbox_runtime import settings as runtime

    assert runtime.SECRET_VARS == contract.CONTAINER_SECRETS
    assert runtime.DM_POLICIES == contract.DM_POLICIES
    assert runtime._MODEL_RE.pattern == contract.MODEL_REF.pattern
    assert {
        p.name: (p.gateway_path, p.env_var) for p in contract.PROVIDERS.values()
    } == runtime.PROVIDERS
    assert {p.name: p.api for p in contract.PROVIDERS.values()} == runtime.PROVIDER_APIS
    assert (contract.SNAPSHOT_KEEP.lo, contract.SNAPSHOT_KEEP.hi) == runtime.SNAPSHOT_KEEP_BOUNDS
    assert runtime.SNAPSHOT_KEEP_DEFAULT == contract.SNAPSHOT_KEEP_DEFAULT
    assert runtime.SNAPSHOT_DEBOUNCE_BOUNDS_S == contract.SNAPSHOT_DEBOUNCE_S
    assert runtime.SNAPSHOT_DEBOUNCE_DEFAULT_S == contract.SNAPSHOT_DEBOUNCE_DEFAULT_S
    assert runtime.SNAPSHOT_KEEP_VAR in contract.CONTAINER_VARS


# --- the Worker's copies ----------------------------------------------------------------------


def test_the_workers_container_names_are_the_contracts() -> None:
    assert tuple(ts_list(ENV_TS, "CONTAINER_SECRET_NAMES")) == contract.CONTAINER_SECRETS
    assert tuple(ts_list(ENV_TS, "CONTAINER_VAR_NAMES")) == contract.CONTAINER_VARS


def test_the_workers_sleep_after_rule_is_the_contracts() -> None:
    assert ts_const(CONTAINER_ENV_TS, "SLEEP_AFTER_DURATION") == (
        f"/{contract.SLEEP_AFTER_DURATION.pattern}/"
    )
    assert ts_const(CONTAINER_ENV_TS, "SLEEP_AFTER_MIN_S") == str(contract.SLEEP_AFTER_MIN_S)


def test_the_program_binds_the_container_names_as_the_contract_says() -> None:
    from tests.infra.harness import run_program_full

    run = run_program_full("prod")
    (deploy,) = [r for r in run.resources if r.type.endswith(":WorkerDeploy")]
    plain = deploy.inputs
    secret_names = set(plain["secret_names"])
    var_names = set(plain["vars"])
    # Optional secrets (provider keys, channel tokens) are bound only when set.
    always = set(contract.CONTAINER_SECRETS) - {
        *(p.env_var for p in contract.PROVIDERS.values()),
        "TELEGRAM_BOT_TOKEN",
        "DISCORD_BOT_TOKEN",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
    }
    assert always | set(contract.WORKER_ONLY_SECRETS) <= secret_names
    assert secret_names <= set(contract.CONTAINER_SECRETS) | set(contract.WORKER_ONLY_SECRETS)
    assert set(contract.CONTAINER_VARS) <= var_names
    assert not var_names & set(contract.CONTAINER_SECRETS)


# --- defaults: Pulumi.yaml's schema and the contract -----------------------------------------

SCHEMA_TYPES = {str: "string", bool: "boolean", int: "integer", list: "array"}


def schema() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


def test_pulumi_yaml_declares_every_key_the_contract_defaults_and_the_secret_keys() -> None:
    declared = schema()
    assert set(declared) == set(contract.DEFAULTS) | set(contract.SECRET_CONFIG_KEYS)
    assert {k for k, v in declared.items() if v.get("secret")} == set(contract.SECRET_CONFIG_KEYS)


@pytest.mark.parametrize("key", sorted(contract.DEFAULTS))
def test_pulumi_yaml_default_is_the_contracts(key: str) -> None:
    spec = schema()[key]
    default = contract.DEFAULTS[key]
    assert spec["type"] == SCHEMA_TYPES[type(default)], key
    assert spec["default"] == default, f"Pulumi.yaml says {spec['default']!r}, contract {default!r}"
    bounds = contract.BOUNDS.get(key)
    if bounds is not None and ".." in spec["description"]:
        assert f"({bounds})" in spec["description"], key


def test_the_worker_components_cron_default_is_the_contracts() -> None:
    from infra.worker import WorkerArgs

    field = WorkerArgs.__dataclass_fields__["cron"]
    assert field.default == contract.DEFAULTS["cronSchedule"]
