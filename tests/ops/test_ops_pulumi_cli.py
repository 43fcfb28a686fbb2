"""The real CLI seam: the argument lists it builds and how it reads the CLI's JSON and errors.

`subprocess.run` is replaced by a recorder that answers like the CLI would for each command, so
nothing here pretends to deploy: `up`/`destroy` are not exercised, only parsing and arguments.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ops.errors import OpsError
from ops.pulumi_cli import PulumiCli


class Recorder:
    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs.get("shell") in (None, False)
        self.calls.append(list(cmd))
        for prefix, (code, out, err) in self.answers.items():
            if tuple(cmd[1 : 1 + len(prefix)]) == prefix:
                return subprocess.CompletedProcess(list(cmd), code, out, err)
        raise AssertionError(f"unexpected command {cmd}")


@pytest.fixture
def cli(tmp_path: Path) -> PulumiCli:
    return PulumiCli(binary="pulumi", cwd=tmp_path, env={})


def test_outputs_and_config_are_read_as_json(
    cli: PulumiCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "moltworker:ephemeral": {"value": "true", "secret": False},
        "moltworker:debugRoutes": {"value": False, "secret": False},
        "cloudflare:apiToken": {"value": "[secret]", "secret": True},
    }
    recorder = Recorder(
        {
            ("stack", "output"): (0, json.dumps({"workerUrl": "https://x"}), ""),
            ("config",): (0, json.dumps(config), ""),
            ("stack", "ls"): (
                0,
                json.dumps([{"name": "organization/moltworker/pr-3"}, {"name": "prod"}]),
                "",
            ),
        }
    )
    monkeypatch.setattr(subprocess, "run", recorder)
    assert cli.stack_outputs("dev") == {"workerUrl": "https://x"}
    assert cli.config("pr-3") == {
        "moltworker:ephemeral": "true",
        "moltworker:debugRoutes": "false",
    }
    assert cli.stack_names() == ["pr-3", "prod"]
    assert recorder.calls[0] == [
        "pulumi",
        "stack",
        "output",
        "--json",
        "--show-secrets",
        "--stack",
        "dev",
        "--non-interactive",
    ]
    # Every stack-specific call names its stack explicitly.
    assert recorder.calls[1] == [
        "pulumi",
        "config",
        "--json",
        "--stack",
        "pr-3",
        "--non-interactive",
    ]


def test_commands_name_their_stack(cli: PulumiCli, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder({(): (0, "", "")})
    monkeypatch.setattr(subprocess, "run", recorder)
    cli.config_set("pr-3", "moltworker:ephemeral", "true")
    cli.config_refresh("pr-3")
    cli.config_copy("staging", "pr-3")
    cli.stack_rm("pr-3")
    cli.stack_init("pr-3", copy_config_from="staging")
    assert recorder.calls == [
        [
            "pulumi",
            "config",
            "set",
            "--stack",
            "pr-3",
            "moltworker:ephemeral",
            "true",
            "--non-interactive",
        ],
        ["pulumi", "config", "refresh", "--force", "--stack", "pr-3", "--non-interactive"],
        ["pulumi", "config", "cp", "--stack", "staging", "--dest", "pr-3", "--non-interactive"],
        ["pulumi", "stack", "rm", "--yes", "--stack", "pr-3", "--non-interactive"],
        ["pulumi", "stack", "init", "pr-3", "--copy-config-from", "staging", "--non-interactive"],
    ]
    assert all("--force" not in c for c in recorder.calls if c[1:3] == ["stack", "rm"])


@pytest.mark.parametrize(
    ("stderr", "hint"),
    [
        ("error: no stack named 'pr-9' found", "pulumi stack ls"),
        ("error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE"),
        ("error: failed to load checkpoint: AccessDenied: 403", "Log in to the state backend"),
    ],
)
def test_failures_name_the_fix(
    cli: PulumiCli, monkeypatch: pytest.MonkeyPatch, stderr: str, hint: str
) -> None:
    monkeypatch.setattr(subprocess, "run", Recorder({(): (255, "", stderr)}))
    with pytest.raises(OpsError) as failed:
        cli.stack_outputs("pr-9")
    assert str(failed.value).startswith("`pulumi stack output --json` failed: ")
    assert hint in str(failed.value)


def test_non_json_answers_are_refused(cli: PulumiCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", Recorder({(): (0, "Current stack outputs (2):", "")}))
    with pytest.raises(OpsError, match="did not print JSON"):
        cli.stack_outputs("dev")


def test_a_hanging_cli_times_out(cli: PulumiCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(list(cmd), kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", hang)
    with pytest.raises(OpsError, match="did not answer within 60s"):
        cli.config("dev")


def test_state_export_and_delete_are_state_only_argument_lists(
    cli: PulumiCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = {"version": 3, "deployment": {"resources": [{"urn": "urn:a", "type": "t"}]}}
    recorder = Recorder(
        {("stack", "export"): (0, json.dumps(export), ""), ("state", "delete"): (0, "", "")}
    )
    monkeypatch.setattr(subprocess, "run", recorder)
    assert cli.stack_export("dev") == export
    cli.state_delete("dev", "urn:pulumi:dev::moltworker::t::a")
    cli.state_delete("dev", "urn:pulumi:dev::moltworker::t::b", force=True)
    assert recorder.calls == [
        ["pulumi", "stack", "export", "--stack", "dev", "--non-interactive"],
        ["pulumi", "state", "delete", "urn:pulumi:dev::moltworker::t::a", "--stack", "dev",
         "--yes", "--non-interactive"],
        ["pulumi", "state", "delete", "urn:pulumi:dev::moltworker::t::b", "--stack", "dev",
         "--yes", "--force", "--non-interactive"],
    ]  # fmt: skip
    recorder.answers[("stack", "export")] = (0, "[]", "")
    with pytest.raises(OpsError, match="did not print a JSON object"):
        cli.stack_export("dev")
