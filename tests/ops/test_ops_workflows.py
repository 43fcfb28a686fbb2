"""The GitHub Actions workflows: linted by actionlint, and the invariants the project relies on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@]+)?@[0-9a-f]{40}$")
PULUMI_ACTION = "pulumi/actions@"


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck from the venv lints every `run:` script through actionlint.
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(BIN / "actionlint"), "-color=false", *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def all_workflows() -> dict[str, dict[str, Any]]:
    return {p.name: load(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, body in workflow["jobs"].items() for step in body["steps"]]


def pulumi_steps(workflow: dict[str, Any], job: str | None = None) -> list[dict[str, Any]]:
    return [
        s.get("with", {})
        for j, s in steps(workflow)
        if str(s.get("uses", "")).startswith(PULUMI_ACTION) and (job is None or j == job)
    ]


def test_actionlint_accepts_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert len(files) >= 4
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - uses: actions/checkout@v7\n        with:\n          no-such-input: 1\n"
        "    needs: [missing]\n"
    )
    result = actionlint(bad)
    assert result.returncode == 1
    assert "missing" in result.stdout


def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path: Path) -> None:
    bad = tmp_path / "unquoted.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: if [ $FOO = bar ]; then echo hi; fi\n"
    )
    result = actionlint(bad)
    assert result.returncode == 1
    assert "SC2086" in result.stdout


def test_every_action_is_pinned_to_a_commit() -> None:
    for name, workflow in all_workflows().items():
        for job, step in steps(workflow):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert PINNED.match(uses), f"{name} {job}: {uses} is not pinned to a commit SHA"


def test_no_secret_reaches_a_shell_script() -> None:
    """Secrets only travel as env of a step; no `run:` expands an expression at all."""
    for name, workflow in all_workflows().items():
        for job, step in steps(workflow):
            script = step.get("run", "")
            assert "${{" not in script, f"{name} {job}: expression inside a run script"
            assert not re.search(r"echo[^\n]*\$\{?(AWS_SECRET|PULUMI_CONFIG|GITHUB_TOKEN)", script)
        text = (WORKFLOWS / name).read_text()
        assert "pull_request_target" not in text, name
        assert "write-all" not in text, name
        assert workflow.get("permissions") == {"contents": "read"}, name


def test_pull_requests_preview_staging_with_the_policy_pack() -> None:
    ci = load("ci.yml")
    assert "pull_request" in ci["on"]
    tests = [s for _, s in steps(ci) if s.get("run") == "make test"]
    assert len(tests) == 1
    (preview,) = pulumi_steps(ci, "preview")
    assert preview["command"] == "preview"
    assert preview["stack-name"] == "staging"
    assert preview["policyPacks"] == "policies"
    assert preview["comment-on-pr"] is True
    assert preview["diff"] is True
    assert ci["jobs"]["preview"]["permissions"]["pull-requests"] == "write"
    assert ci["jobs"]["preview"]["needs"] == "test"


def test_merge_deploys_dev_then_staging_then_protected_prod() -> None:
    deploy = load("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    for job in ("dev", "staging", "prod"):
        ups = [s for s in pulumi_steps(deploy, job) if s.get("command") == "up"]
        assert [s["stack-name"] for s in ups] == [job]
        assert all(s["policyPacks"] == "policies" for s in ups)
    # No other workflow may deploy prod.
    for name, workflow in all_workflows().items():
        for job, body in workflow["jobs"].items():
            for step in pulumi_steps({"jobs": {job: body}}):
                if step.get("stack-name") == "prod" and step.get("command") in ("up", "destroy"):
                    assert (name, body.get("environment")) == ("deploy.yml", "production")


def test_nightly_drift_check_fails_on_any_change() -> None:
    nightly = load("nightly.yml")
    assert nightly["on"]["schedule"]
    drift = nightly["jobs"]["drift"]
    stacks = {entry["stack"] for entry in drift["strategy"]["matrix"]["include"]}
    assert stacks == {"dev", "staging", "prod"}
    (check,) = pulumi_steps(nightly, "drift")
    assert check["command"] == "preview"
    assert check["expect-no-changes"] is True
    assert check["refresh"] is True


def test_review_stacks_are_created_and_destroyed_with_the_pr() -> None:
    review = load("review-stack.yml")
    assert set(review["on"]["pull_request"]["types"]) >= {"opened", "synchronize", "closed"}
    assert review["concurrency"]["cancel-in-progress"] is False
    runs = {j: [s.get("run", "") for s in body["steps"]] for j, body in review["jobs"].items()}
    assert any("ops review create --pr" in r for r in runs["deploy"])
    assert any('ops smoke --stack "pr-$PR_NUMBER"' in r for r in runs["deploy"])
    assert any("ops review destroy --pr" in r for r in runs["destroy"])
    assert "closed" in review["jobs"]["destroy"]["if"]
    (up,) = [s for s in pulumi_steps(review, "deploy") if s.get("command") == "up"]
    assert up["stack-name"] == "pr-${{ github.event.pull_request.number }}"
    sweep = load("nightly.yml")["jobs"]["sweep"]
    assert sweep["permissions"]["pull-requests"] == "read"
    assert any("ops review sweep" in s.get("run", "") for s in sweep["steps"])


def test_every_pulumi_command_logs_in_to_the_configured_backend() -> None:
    for name, workflow in all_workflows().items():
        for step in pulumi_steps(workflow):
            if "command" in step:
                assert step["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}", name


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml", "nightly.yml", "review-stack.yml"])
def test_pulumi_cli_version_matches_the_sdk(name: str) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    sdk = re.search(r'"pulumi==([0-9.]+)"', pyproject)
    assert sdk is not None
    for step in pulumi_steps(load(name)):
        assert step["pulumi-version"] == sdk.group(1)
