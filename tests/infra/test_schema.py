"""Pulumi.yaml's config schema, the settings loader and the example stacks agree."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml

from infra import settings
from tests.infra.harness import PROJECT, ROOT, TEST_SECRETS, stack_config

pytestmark = pytest.mark.timeout(60)


def schema() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


class RecordingConfig(pulumi.Config):
    """pulumi.Config that remembers every key the loader asks for."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.keys: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.keys.add(key)
        return super().get(key, default)


def test_every_key_the_loader_reads_is_declared_and_vice_versa() -> None:
    config = stack_config("dev")
    config.update(TEST_SECRETS)
    pulumi.runtime.set_all_config(config, list(TEST_SECRETS))
    recording = RecordingConfig()
    settings.load(recording, "dev", warn=lambda _: None)
    declared = set(schema())
    assert recording.keys == declared, (
        f"read but not declared: {sorted(recording.keys - declared)}; "
        f"declared but never read: {sorted(declared - recording.keys)}"
    )


def test_every_declared_key_is_typed_described_and_defaulted() -> None:
    for key, spec in schema().items():
        assert spec.get("type") in ("string", "integer", "boolean", "array"), key
        assert len(spec.get("description", "")) > 10, key
        if spec.get("secret"):
            # The CLI refuses plain text for these; a default would be a plain-text secret.
            assert "default" not in spec, key
        else:
            assert "default" in spec, key
        if spec["type"] == "array":
            assert spec["items"] == {"type": "string"}, key


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_example_stacks_use_declared_keys_and_hold_no_secrets(stack: str) -> None:
    declared = set(schema())
    secret_keys = {k for k, v in schema().items() if v.get("secret")}
    for key in stack_config(stack):
        namespace, name = key.split(":", 1)
        assert namespace == PROJECT and name in declared, key
        assert name not in secret_keys, f"{key}: secrets are set with `pulumi config set --secret`"
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert "pulumi config set --secret cloudflare:apiToken" in text
