from __future__ import annotations

import json

import httpx
import pytest
from ops_fakes import Cli, MemoryPulumi, MemoryStack

GITHUB_TOKEN = "ghs_do-not-print-this-token-42"


def staging() -> MemoryStack:
    config = {"moltworker:accountId": "0" * 32, "moltworker:workersSubdomain": "me"}
    return MemoryStack(config=dict(config), deployed_config=dict(config))


def deployed(config: dict[str, str]) -> MemoryStack:
    return MemoryStack(config=dict(config), deployed_config=dict(config))


EPHEMERAL = {"moltworker:ephemeral": "true"}


def test_create_copies_the_template_and_marks_it_ephemeral(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["staging"] = staging()
    run = cli("review", "create", "--pr", "12")
    assert run.code == 0, run.text
    assert ("stack_init", "pr-12", "staging") in pulumi.calls
    config = pulumi.stacks["pr-12"].config
    assert config["moltworker:workersSubdomain"] == "me"
    assert config["moltworker:ephemeral"] == "true"
    assert config["moltworker:accessServiceToken"] == "true"


def test_create_on_a_fresh_checkout_restores_and_updates_the_config(
    cli: Cli, pulumi: MemoryPulumi
) -> None:
    pulumi.stacks["staging"] = staging()
    assert cli("review", "create", "--pr", "12").code == 0
    pulumi.up("pr-12")
    # The next push: a fresh checkout has no Pulumi.pr-12.yaml, and staging gained a setting.
    pulumi.stacks["pr-12"].config = {}
    pulumi.stacks["staging"].config["moltworker:sleepAfter"] = "30m"
    run = cli("review", "create", "--pr", "12")
    assert run.code == 0, run.text
    assert "restored its config from the last deployment" in run.out
    config = pulumi.stacks["pr-12"].config
    assert config["moltworker:sleepAfter"] == "30m"
    assert config["moltworker:ephemeral"] == "true"
    assert [c for c in pulumi.calls if c[0] in ("stack_init", "stack_rm")] == [
        ("stack_init", "pr-12", "staging")
    ]


def test_create_recreates_a_stack_that_never_deployed(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["staging"] = staging()
    pulumi.stacks["pr-5"] = MemoryStack()  # init ran, `pulumi up` never succeeded
    run = cli("review", "create", "--pr", "5")
    assert run.code == 0, run.text
    assert ("stack_rm", "pr-5") in pulumi.calls
    assert pulumi.stacks["pr-5"].config["moltworker:ephemeral"] == "true"


@pytest.mark.parametrize("template", ["prod", "production", "prod-eu", "pr-4"])
def test_create_refuses_production_and_review_templates(
    cli: Cli, pulumi: MemoryPulumi, template: str
) -> None:
    pulumi.stacks[template] = staging()
    run = cli("review", "create", "--pr", "3", "--template", template)
    assert run.code == 1
    assert "use staging" in run.err
    assert "pr-3" not in pulumi.stacks


def test_create_refuses_a_template_that_names_resources(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["staging"] = staging()
    pulumi.stacks["staging"].config["moltworker:customDomain"] = "agent.example.com"
    run = cli("review", "create", "--pr", "3")
    assert run.code == 1
    assert "moltworker:customDomain" in run.err
    assert "Pulumi.staging.yaml" in run.err
    assert "moltworker:ephemeral" not in pulumi.stacks["pr-3"].config


@pytest.mark.parametrize("stack", ["prod", "staging", "dev", "pr-0", "pr-", "pr-12x", "prod-pr-1"])
def test_destroy_refuses_anything_not_named_pr_n(
    cli: Cli, pulumi: MemoryPulumi, stack: str
) -> None:
    pulumi.stacks[stack] = deployed(EPHEMERAL)
    run = cli("review", "destroy", "--stack", stack)
    assert run.code == 1
    assert "refusing to destroy" in run.err or f"stack name {stack!r} is not valid" in run.err
    assert stack in pulumi.stacks
    assert not [c for c in pulumi.calls if c[0] == "destroy_and_remove"]


def test_destroy_trusts_the_deployed_config_not_the_local_file(
    cli: Cli, pulumi: MemoryPulumi
) -> None:
    # Someone edited the local file to say ephemeral; the deployment says otherwise.
    pulumi.stacks["pr-7"] = MemoryStack(config=dict(EPHEMERAL), deployed_config={})
    run = cli("review", "destroy", "--pr", "7")
    assert run.code == 1
    assert "does not say moltworker:ephemeral=true" in run.err
    assert ("config_refresh", "pr-7") in pulumi.calls
    assert "pr-7" in pulumi.stacks


def test_destroy_of_a_stack_that_does_not_exist_is_a_no_op(cli: Cli, pulumi: MemoryPulumi) -> None:
    run = cli("review", "destroy", "--pr", "41")
    assert run.code == 0, run.text
    assert "nothing to destroy" in run.out
    assert pulumi.calls == []


def test_destroy_removes_a_review_stack_that_never_deployed(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["pr-8"] = MemoryStack(config=dict(EPHEMERAL))
    run = cli("review", "destroy", "--pr", "8")
    assert run.code == 0, run.text
    assert "never deployed" in run.out
    assert "pr-8" not in pulumi.stacks
    assert not [c for c in pulumi.calls if c[0] == "destroy_and_remove"]


def test_destroy_removes_an_ephemeral_review_stack(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["pr-7"] = deployed(EPHEMERAL)
    run = cli("review", "destroy", "--pr", "7")
    assert run.code == 0, run.text
    assert pulumi.calls[-1] == ("destroy_and_remove", "pr-7")
    assert "pr-7" not in pulumi.stacks


def github(states: dict[int, int | str], seen: list[httpx.Request]) -> httpx.MockTransport:
    """GitHub's pulls endpoint: state per PR number, or an HTTP status to fail with."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        number = int(request.url.path.rsplit("/", 1)[1])
        answer = states.get(number, 404)
        if isinstance(answer, int):
            return httpx.Response(answer, json={"message": "nope"})
        return httpx.Response(200, json={"number": number, "state": answer})

    return httpx.MockTransport(handler)


def sweep(cli: Cli, *extra: str):
    return cli("review", "sweep", "--repo", "octo/moltworker", *extra)


def test_sweep_destroys_only_closed_ephemeral_review_stacks(cli: Cli, pulumi: MemoryPulumi) -> None:
    for name in ("pr-1", "pr-2", "pr-4"):
        pulumi.stacks[name] = deployed(EPHEMERAL)
    pulumi.stacks["pr-3"] = deployed({"moltworker:ephemeral": "false"})
    pulumi.stacks["prod"] = deployed({})
    pulumi.stacks["staging"] = deployed({})
    seen: list[httpx.Request] = []
    cli.deps.env = {"GITHUB_TOKEN": GITHUB_TOKEN}
    cli.deps.github_transport = github({1: "open", 2: "closed", 3: "closed"}, seen)
    run = sweep(cli)
    # pr-3 (not ephemeral) and pr-4 (PR not found) are failures, reported and kept.
    assert run.code == 1
    assert set(pulumi.stacks) == {"pr-1", "pr-3", "pr-4", "prod", "staging"}
    assert "pr-1: pull request open, keeping" in run.out
    assert "pr-3: refusing to destroy" in run.err
    assert "pr-4: pull request #4 does not exist" in run.err
    assert "2 review stack(s) could not be swept" in run.err
    # Only review stacks were looked up; the token went in a header, never in a URL.
    assert sorted(r.url.path for r in seen) == [
        f"/repos/octo/moltworker/pulls/{n}" for n in (1, 2, 3, 4)
    ]
    assert all(r.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}" for r in seen)
    assert all(GITHUB_TOKEN not in str(r.url) for r in seen)
    assert GITHUB_TOKEN not in run.text


def test_sweep_dry_run_changes_nothing(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["pr-2"] = deployed(EPHEMERAL)
    cli.deps.env = {"GITHUB_TOKEN": GITHUB_TOKEN}
    cli.deps.github_transport = github({2: "closed"}, [])
    run = sweep(cli, "--dry-run")
    assert run.code == 0
    assert "would destroy" in run.out
    assert "pr-2" in pulumi.stacks


@pytest.mark.parametrize("status", [401, 403])
def test_sweep_with_a_refused_token(cli: Cli, pulumi: MemoryPulumi, status: int) -> None:
    pulumi.stacks["pr-2"] = deployed(EPHEMERAL)
    cli.deps.env = {"GITHUB_TOKEN": GITHUB_TOKEN}
    cli.deps.github_transport = github({2: status}, [])
    run = sweep(cli)
    assert run.code == 1
    assert f"({status}): the token is expired or lacks `pull-requests: read`" in run.err
    assert "pr-2" in pulumi.stacks
    assert GITHUB_TOKEN not in run.text


def test_sweep_with_unreachable_github(cli: Cli, pulumi: MemoryPulumi) -> None:
    pulumi.stacks["pr-2"] = deployed(EPHEMERAL)
    cli.deps.env = {"GITHUB_TOKEN": GITHUB_TOKEN}

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    cli.deps.github_transport = httpx.MockTransport(down)
    run = sweep(cli)
    assert run.code == 1
    assert "cannot reach the GitHub API (ConnectError)" in run.err
    assert "pr-2" in pulumi.stacks


def test_sweep_needs_a_token_and_a_valid_repo(cli: Cli, pulumi: MemoryPulumi) -> None:
    assert "GITHUB_TOKEN is not set" in sweep(cli).err
    cli.deps.env = {"GITHUB_TOKEN": GITHUB_TOKEN}
    pulumi.stacks["pr-2"] = deployed(EPHEMERAL)
    bad = cli("review", "sweep", "--repo", "../etc")
    assert bad.code == 1
    assert "must look like owner/name" in bad.err


def test_real_pulumi_cli_missing_is_explained(tmp_path) -> None:
    from ops.errors import OpsError
    from ops.pulumi_cli import PulumiCli, short_stack_name

    cli = PulumiCli(binary=str(tmp_path / "no-such-pulumi"), cwd=tmp_path, env={})
    with pytest.raises(OpsError, match="was not found: install it"):
        cli.stack_names()
    assert short_stack_name("organization/moltworker/pr-12") == "pr-12"
    assert short_stack_name("organization/other-project/pr-12") == ""
    assert short_stack_name("pr-12") == "pr-12"


def test_outputs_file_errors(cli: Cli, tmp_path) -> None:
    missing = cli("smoke", "--stack", "dev", "--outputs-file", str(tmp_path / "none.json"))
    assert missing.code == 1
    assert "cannot read the outputs file" in missing.err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([1, 2]))
    run = cli("smoke", "--stack", "dev", "--outputs-file", str(bad))
    assert "must hold a JSON object" in run.err
