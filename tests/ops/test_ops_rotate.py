from __future__ import annotations

import re
from pathlib import Path

import pytest
from ops_fakes import Cli, MemoryPulumi, MemoryStack

from infra.settings import ROTATABLE
from ops.rotate import ROTATIONS

ROOT = Path(__file__).resolve().parents[2]


def test_every_rotation_maps_to_a_declared_config_key() -> None:
    # Read as text: the schema's keys are top-level entries under `config:`, two spaces deep.
    schema = (ROOT / "Pulumi.yaml").read_text()
    assert {r.name for r in ROTATIONS.values()} == set(ROTATABLE)
    for rotation in ROTATIONS.values():
        key = rotation.config_key.split(":", 1)[1]
        declared = re.search(rf"^  {key}:\n    type: (\w+)$", schema, re.M)
        assert declared is not None and declared.group(1) == "integer", key


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("gateway-token", "moltworker:rotateGatewayToken"),
        ("control-secret", "moltworker:rotateControlSecret"),
        ("cdp-secret", "moltworker:rotateCdpSecret"),
    ],
)
def test_rotate_bumps_the_counter_and_rolls_out(
    cli: Cli, pulumi: MemoryPulumi, secret: str, key: str
) -> None:
    pulumi.stacks["dev"] = MemoryStack()
    first = cli("rotate", secret, "--stack", "dev", "--yes")
    assert first.code == 0, first.text
    assert pulumi.stacks["dev"].config[key] == "1"
    assert pulumi.calls[-1] == ("up", "dev")
    assert "What this rotation breaks" in first.out
    second = cli("rotate", secret, "--stack", "dev", "--yes")
    assert second.code == 0
    assert pulumi.stacks["dev"].config[key] == "2"


def test_rotate_without_yes_changes_nothing(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["prod"] = MemoryStack()
    run = cli("rotate", "gateway-token", "--stack", "prod")
    assert run.code == 1
    assert "must pair again" in run.out
    assert "re-run with --yes" in run.err
    assert pulumi.calls == []


def test_rotate_no_up_only_bumps(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["dev"] = MemoryStack(config={"moltworker:rotateCdpSecret": "4"})
    run = cli("rotate", "cdp-secret", "--stack", "dev", "--yes", "--no-up")
    assert run.code == 0
    assert pulumi.stacks["dev"].config["moltworker:rotateCdpSecret"] == "5"
    assert ("up", "dev") not in pulumi.calls
    assert "pulumi up --stack dev" in run.out


def test_rotate_refuses_a_garbled_counter(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["dev"] = MemoryStack(config={"moltworker:rotateGatewayToken": "two"})
    run = cli("rotate", "gateway-token", "--stack", "dev", "--yes")
    assert run.code == 1
    assert "not a whole number" in run.err
    assert pulumi.stacks["dev"].config["moltworker:rotateGatewayToken"] == "two"


def test_snapshot_key_is_not_rotatable(cli: Cli, pulumi: MemoryPulumi, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli("rotate", "snapshot-key", "--stack", "dev", "--yes")
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
