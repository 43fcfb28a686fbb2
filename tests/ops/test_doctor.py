"""`python -m ops doctor`: the preflight against the fake Cloudflare API (tests/infra/cf_api.py)
and fake local tools."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from ops_fakes import Cli

from ops import doctor
from tests.infra.cf_api import CloudflareApi
from tests.infra.harness import ROOT, stack_config

pytestmark = pytest.mark.timeout(60)

GOOD_SECRETS = {
    "cloudflare:apiToken": "sim-token-" + "0" * 30,
    "moltworker:anthropicApiKey": "sk-ant-api03-" + "a" * 40,
    "moltworker:openaiApiKey": "sk-proj-" + "b" * 40,
    "moltworker:telegramBotToken": "123456789:" + "c" * 35,
}


class Machine:
    """Fake PATH and commands: which tools exist, whether the Docker daemon answers."""

    def __init__(
        self,
        config: dict[str, dict[str, object]],
        *,
        tools: set[str],
        daemon: bool,
        state: Mapping[str, object] | None = None,
    ) -> None:
        self.config = config
        self.tools = tools | {"node"}  # wrangler runs on it
        self.daemon = daemon
        self.state = state  # what `pulumi stack export` prints; None: no state yet
        self.commands: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.tools else None

    def run(self, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(cmd))
        if list(cmd[:3]) == ["pulumi", "stack", "export"]:
            if self.state is None:
                return subprocess.CompletedProcess(cmd, 255, "", "no deployment")
            return subprocess.CompletedProcess(cmd, 0, json.dumps(self.state), "")
        if cmd[0] == "pulumi":
            return subprocess.CompletedProcess(cmd, 0, json.dumps(self.config), "")
        if cmd[1] == "info":
            return subprocess.CompletedProcess(cmd, 0 if self.daemon else 1, "{}", "no daemon")
        raise AssertionError(cmd)


def cli_config(
    secrets: dict[str, str], *, plaintext: tuple[str, ...] = ()
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for key, value in stack_config("dev").items():
        out[key] = {"value": value, "secret": False}
    for key, value in secrets.items():
        out[key] = {"value": value, "secret": key not in plaintext}
    # CI builds the bundle once; the deploy still runs the project's pinned wrangler.
    out["moltworker:workerBundleDir"] = {"value": "dist/worker", "secret": False}
    return out


@pytest.fixture
def sim() -> CloudflareApi:
    return CloudflareApi(
        token=GOOD_SECRETS["cloudflare:apiToken"],
        account_id="0" * 32,
        workers_subdomain="your-subdomain",
    )


def checks(sim: CloudflareApi, machine: Machine) -> list[doctor.Finding]:
    return doctor.run_checks(
        "dev", which=machine.which, run=machine.run, http_client_factory=sim.client
    )


def failures(findings: list[doctor.Finding]) -> list[str]:
    return [f.message for f in findings if not f.ok]


def test_a_ready_machine_and_account_pass(sim: CloudflareApi) -> None:
    machine = Machine(cli_config(GOOD_SECRETS), tools={"pulumi", "docker"}, daemon=True)
    findings = checks(sim, machine)
    assert failures(findings) == []
    assert [
        "pulumi",
        "config",
        "--json",
        "--show-secrets",
        "--stack",
        "dev",
        "--cwd",
        str(ROOT),
    ] in machine.commands
    paths = {r.path for r in sim.requests}
    assert "/client/v4/user/tokens/verify" in paths
    assert f"/client/v4/accounts/{sim.account_id}/containers/applications" in paths
    # No secret value ends up in what the doctor prints.
    printed = "\n".join(f.line() for f in findings)
    assert not any(v in printed for v in GOOD_SECRETS.values())


def test_missing_tools_and_daemon(sim: CloudflareApi) -> None:
    machine = Machine(cli_config(GOOD_SECRETS), tools={"pulumi", "docker"}, daemon=False)
    assert any(
        "no daemon answers" in m and "systemctl start docker" in m
        for m in failures(checks(sim, machine))
    )
    assert not doctor.check_builder(lambda _: None, machine.run).ok
    assert "get.pulumi.com" in doctor.check_pulumi(lambda _: None).message


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda s: setattr(s, "r2_enabled", False), "R2 is not enabled on the account"),
        (lambda s: setattr(s, "workers_subdomain", None), "has no workers.dev subdomain"),
        (lambda s: setattr(s, "containers_enabled", False), "need the Workers Paid plan"),
        (lambda s: setattr(s, "access_team", None), "has no Zero Trust organization"),
        (
            lambda s: setattr(s, "workers_subdomain", "bob"),
            "`pulumi config set workersSubdomain bob`",
        ),
        (
            lambda s: s.revoke("r2"),
            "lacks the 'Workers R2 Storage Write' permission",
        ),
        (
            lambda s: s.revoke("containers"),
            "lacks the 'Containers Write' permission",
        ),
        (lambda s: setattr(s, "token_status", "expired"), "the API token is expired"),
        (lambda s: s.revoke("ai"), "lacks the 'AI Gateway Edit' permission"),
        (lambda s: s.revoke("tokens"), "'Account API Tokens Write'"),
        (
            lambda s: s.permission_groups.remove("AI Gateway Run"),
            "no permission group ['AI Gateway Run']",
        ),
    ],
)
def test_account_problems_are_named_with_the_fix(
    sim: CloudflareApi, setup: Callable[[CloudflareApi], object], expected: str
) -> None:
    setup(sim)
    machine = Machine(cli_config(GOOD_SECRETS), tools={"pulumi", "docker"}, daemon=True)
    found = failures(checks(sim, machine))
    assert len(found) == 1 and expected in found[0], found


def test_a_rejected_token_stops_the_account_checks(sim: CloudflareApi) -> None:
    secrets = dict(GOOD_SECRETS, **{"cloudflare:apiToken": "x" * 40})
    machine = Machine(cli_config(secrets), tools={"pulumi", "docker"}, daemon=True)
    found = failures(checks(sim, machine))
    assert len(found) == 1 and "the API token was rejected" in found[0]
    assert "x" * 40 not in found[0]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "moltworker:openaiApiKey",
            "sk-ant-api03-" + "d" * 40,
            "looks like the value for moltworker:anthropicApiKey",
        ),
        ("moltworker:openaiApiKey", "OPENAI_API_KEY=sk-" + "e" * 40, "holds an assignment"),
        ("moltworker:anthropicApiKey", "ANTHROPIC_API_KEY", "holds what looks like a key name"),
        (
            "moltworker:telegramBotToken",
            "xoxb-" + "f" * 30,
            "looks like the value for moltworker:slackBotToken",
        ),
        (
            "moltworker:anthropicApiKey",
            " sk-ant-api03-" + "g" * 40,
            "has surrounding spaces or quotes",
        ),
        ("moltworker:telegramBotToken", "hello", "does not look like a Telegram bot token"),
    ],
)
def test_swapped_or_malformed_secrets_are_flagged(
    sim: CloudflareApi, key: str, value: str, expected: str
) -> None:
    machine = Machine(
        cli_config(dict(GOOD_SECRETS, **{key: value})), tools={"pulumi", "docker"}, daemon=True
    )
    found = failures(checks(sim, machine))
    assert len(found) == 1 and found[0].startswith(f"{key}: {expected}"), found
    assert value.strip() not in found[0]


def test_plaintext_secret_and_missing_config(sim: CloudflareApi) -> None:
    config = cli_config(GOOD_SECRETS, plaintext=("moltworker:anthropicApiKey",))
    del config["moltworker:adminEmails"]
    machine = Machine(config, tools={"pulumi", "docker"}, daemon=True)
    found = failures(checks(sim, machine))
    assert any(m.startswith("moltworker:anthropicApiKey: is stored in plain text") for m in found)
    assert any(m.startswith("moltworker:adminEmails: no admin") for m in found)


def test_without_the_cli_it_reads_the_stack_file(tmp_path: Path, sim: CloudflareApi) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    text += "  cloudflare:apiToken:\n    secure: v1:AAAAencrypted\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    machine = Machine({}, tools={"docker"}, daemon=True)
    findings = doctor.run_checks(
        "dev", which=machine.which, run=machine.run, root=tmp_path, http_client_factory=sim.client
    )
    found = failures(findings)
    assert any("Pulumi CLI is not on PATH" in m for m in found)
    assert any("cannot check the account" in m for m in found)
    assert sim.requests == []


def test_the_ops_command_prints_one_line_per_finding_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    seen: list[tuple[str, Path]] = []

    def fake_checks(stack: str, *, root: Path) -> list[doctor.Finding]:
        seen.append((stack, root))
        return [doctor.Finding(True, "fine"), doctor.Finding(False, "broken; fix it")]

    monkeypatch.setattr(doctor, "run_checks", fake_checks)
    run = cli("doctor", "--stack", "prod")
    assert run.code == 1 and seen == [("prod", ROOT)]
    assert run.out.splitlines()[:2] == ["ok    fine", "FAIL  broken; fix it"]
    monkeypatch.setattr(doctor, "run_checks", lambda _s, root: [doctor.Finding(True, "fine")])
    run = cli("doctor", "--stack", "prod")
    assert run.code == 0 and "ready for `pulumi up`" in run.out

    def unreadable(_stack: str, *, root: Path) -> list[doctor.Finding]:
        raise SystemExit("FAIL  no Pulumi.prod.yaml; create the stack: `pulumi stack init prod`")

    monkeypatch.setattr(doctor, "run_checks", unreadable)
    run = cli("doctor", "--stack", "prod")
    assert run.code == 1 and "pulumi stack init prod" in run.err


def test_the_pinned_wrangler_must_be_installed(tmp_path: Path) -> None:
    config = doctor.StackConfig({}, set(), set(), "test")
    missing = doctor.check_worker_build(config, lambda _: "/usr/bin/node", tmp_path)
    assert not missing.ok and "run `npm ci` there" in missing.message
    package = tmp_path / "worker" / "node_modules" / "wrangler"
    (package / "bin").mkdir(parents=True)
    (package / "bin" / "wrangler.js").write_text("")
    (tmp_path / "worker" / "package.json").write_text(
        json.dumps({"devDependencies": {"wrangler": "4.124.0"}})
    )
    (package / "package.json").write_text(json.dumps({"version": "4.100.0"}))
    stale = doctor.check_worker_build(config, lambda _: "/usr/bin/node", tmp_path)
    assert (
        not stale.ok and "4.100.0 is installed" in stale.message and "pins 4.124.0" in stale.message
    )
    (package / "package.json").write_text(json.dumps({"version": "4.124.0"}))
    assert doctor.check_worker_build(config, lambda _: "/usr/bin/node", tmp_path).ok
    no_node = doctor.check_worker_build(config, lambda _: None, tmp_path)
    assert not no_node.ok and "Node 24" in no_node.message
    # The project's own tree passes: what `make test` installed is the pin.
    assert doctor.check_worker_build(config, lambda _: "/usr/bin/node", ROOT).ok


def test_the_container_cli_wrangler_runs(tmp_path: Path) -> None:
    podman_only = Machine({}, tools={"podman"}, daemon=True)
    found = doctor.check_builder(podman_only.which, podman_only.run, env={})
    assert not found.ok and "WRANGLER_DOCKER_BIN=" in found.message
    assert str(ROOT / "infra" / "docker_shim.py") in found.message
    shim = Machine({}, tools={"podman"}, daemon=True)
    env = {"WRANGLER_DOCKER_BIN": str(ROOT / "infra" / "docker_shim.py")}
    assert doctor.check_builder(shim.which, shim.run, env=env).ok
    assert shim.commands == [[env["WRANGLER_DOCKER_BIN"], "info", "--format", "{{json .}}"]]
    gone = doctor.check_builder(shim.which, shim.run, env={"WRANGLER_DOCKER_BIN": "/nowhere"})
    assert not gone.ok and "does not exist" in gone.message
    docker = Machine({}, tools={"docker"}, daemon=True)
    assert doctor.check_builder(docker.which, docker.run, env={}).ok


def test_resources_of_the_old_deploy_path_in_state_point_to_ops_adopt() -> None:
    urn = (
        "urn:pulumi:dev::moltworker::moltworker:worker:Worker$cloudflare:index/worker:Worker"
        "::worker-script"
    )
    kept = "urn:pulumi:dev::moltworker::cloudflare:index/r2Bucket:R2Bucket::storage-bucket"
    state = {
        "deployment": {
            "resources": [
                {"urn": urn, "type": "cloudflare:index/worker:Worker"},
                {"urn": kept, "type": "cloudflare:index/r2Bucket:R2Bucket"},
            ]
        }
    }
    machine = Machine({}, tools={"pulumi"}, daemon=True, state=state)
    found = doctor.check_legacy_state("dev", machine.which, machine.run)
    assert not found.ok
    assert "1 resource(s) of the old deploy path" in found.message
    assert "`python -m ops adopt --stack dev`" in found.message
    fresh = Machine({}, tools={"pulumi"}, daemon=True)
    assert doctor.check_legacy_state("dev", fresh.which, fresh.run).ok


def _with_token_policies(sim: CloudflareApi, groups: list[str]) -> Callable[[], httpx.Client]:
    """The fake API, its token allowed to read its own policy (these permission groups)."""
    sim.token_policies = groups
    return sim.client


def test_the_tokens_own_permissions_name_what_the_deploy_lacks(sim: CloudflareApi) -> None:
    machine = Machine(cli_config(GOOD_SECRETS), tools={"pulumi", "docker"}, daemon=True)
    run = lambda groups: doctor.run_checks(  # noqa: E731
        "dev",
        which=machine.which,
        run=machine.run,
        http_client_factory=_with_token_policies(sim, groups),
    )
    assert failures(run(["Workers Scripts Write", "Containers Write"])) == []
    (missing,) = failures(run(["Workers Scripts Read", "Containers Write"]))
    assert "lacks 'Workers Scripts Write'" in missing and "PUT /workers/scripts" in missing
    # A token that may not read itself (no 'API Tokens Read'): a warning with the names.
    sim.token_policies = None
    warned = [f for f in checks(sim, machine) if f.warning and "own permissions" in f.message]
    assert warned and "'Workers Scripts Write' and 'Containers Write'" in warned[0].message


def test_the_deploy_permissions_are_the_ones_the_deploy_path_names() -> None:
    from infra.dynamic.worker_deploy import CONTAINERS_PERMISSION, SCRIPT_PERMISSION

    assert doctor.DEPLOY_PERMISSIONS == (SCRIPT_PERMISSION, CONTAINERS_PERMISSION)


def test_the_credential_formats_are_the_policy_packs(sim: CloudflareApi) -> None:
    """One table (policies/secret_shapes.py): a value the preflight takes as a key's format is
    one the policy pack would refuse as a plain Worker var, and each key has a format."""
    from policies.secret_shapes import CREDENTIAL_FORMATS, secret_shape

    samples = {
        "moltworker:anthropicApiKey": GOOD_SECRETS["moltworker:anthropicApiKey"],
        "moltworker:openaiApiKey": GOOD_SECRETS["moltworker:openaiApiKey"],
        "moltworker:telegramBotToken": GOOD_SECRETS["moltworker:telegramBotToken"],
        "moltworker:slackBotToken": "xoxb-" + "1" * 12 + "-" + "a" * 24,
        "moltworker:slackAppToken": "xapp-1-" + "A" * 30,
        "moltworker:discordBotToken": "M" + "a" * 25 + "." + "b" * 6 + "." + "c" * 30,
    }
    assert set(doctor.SECRET_FORMATS) == {*samples, "cloudflare:apiToken"}
    for key, value in samples.items():
        kind = doctor.SECRET_FORMATS[key]
        assert CREDENTIAL_FORMATS[kind].is_whole(value), key
        assert secret_shape(value) is not None, key
    config = doctor.StackConfig(dict(samples), set(samples), set(), "test")
    assert [f.message for f in doctor.check_secrets(config) if not f.ok] == []
