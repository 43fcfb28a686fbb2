from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ops.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    [],
    ["smoke"],
    ["rotate"],
    ["state-bucket"],
    ["state-bucket", "create"],
    ["state-bucket", "check"],
    ["review"],
    ["review", "create"],
    ["review", "destroy"],
    ["review", "sweep"],
    ["backup"],
    ["backup", "list"],
    ["backup", "download"],
    ["backup", "restore"],
    ["backup", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m ops {' '.join(command)}".rstrip())
    assert len(out.splitlines()) > 3


def test_entry_point_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("smoke", "backup", "rotate", "review", "state-bucket"):
        assert command in result.stdout


def test_building_the_parser_leaves_the_slow_libraries_unloaded() -> None:
    # Every run builds every command's parser: a command module that imported the Cloudflare
    # SDK, boto3 or the Pulumi provider at its top would make `python -m ops smoke` wait
    # seconds for libraries it never uses.
    probe = (
        "import sys\n"
        "from ops.__main__ import build_parser\n"
        "build_parser()\n"
        "slow = ('boto3', 'cloudflare', 'pulumi_cloudflare')\n"
        "print(' '.join(m for m in slow if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
