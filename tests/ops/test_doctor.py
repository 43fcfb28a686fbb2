"""The preflight against the simulated Cloudflare API and fake local tools."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from infra import doctor
from tests.infra.cf_sim import CloudflareSim
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
def sim() -> CloudflareSim:
    return CloudflareSim(
        token=GOOD_SECRETS["cloudflare:apiToken"],
        account_id="0" * 32,
        workers_subdomain="your-subdomain",
    )


def checks(sim: CloudflareSim, machine: Machine) -> list[doctor.Finding]:
    return doctor.run_checks(
        "dev", which=machine.which, run=machine.run, http_client_factory=sim.client
    )


def failures(findings: list[doctor.Finding]) -> list[str]:
    return [f.message for f in findings if not f.ok]


def test_a_ready_machine_and_account_pass(sim: CloudflareSim) -> None:
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


def test_missing_tools_and_daemon(sim: CloudflareSim) -> None:
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
            lambda s: s.token_permissions.discard("r2"),
            "lacks the 'Workers R2 Storage Write' permission",
        ),
        (
            lambda s: s.token_permissions.discard("containers"),
            "lacks the 'Containers Write' permission",
        ),
        (lambda s: setattr(s, "token_status", "expired"), "the API token is expired"),
        (lambda s: s.token_permissions.discard("ai"), "lacks the 'AI Gateway Edit' permission"),
        (lambda s: s.token_permissions.discard("tokens"), "'Account API Tokens Write'"),
        (
            lambda s: s.permission_groups.remove("AI Gateway Run"),
            "no permission group ['AI Gateway Run']",
        ),
    ],
)
def test_account_problems_are_named_with_the_fix(
    sim: CloudflareSim, setup: Callable[[CloudflareSim], object], expected: str
) -> None:
    setup(sim)
    machine = Machine(cli_config(GOOD_SECRETS), tools={"pulumi", "docker"}, daemon=True)
    found = failures(checks(sim, machine))
    assert len(found) == 1 and expected in found[0], found


def test_a_rejected_token_stops_the_account_checks(sim: CloudflareSim) -> None:
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
    sim: CloudflareSim, key: str, value: str, expected: str
) -> None:
    machine = Machine(
        cli_config(dict(GOOD_SECRETS, **{key: value})), tools={"pulumi", "docker"}, daemon=True
    )
    found = failures(checks(sim, machine))
    assert len(found) == 1 and found[0].startswith(f"{key}: {expected}"), found
    assert value.strip() not in found[0]


def test_plaintext_secret_and_missing_config(sim: CloudflareSim) -> None:
    config = cli_config(GOOD_SECRETS, plaintext=("moltworker:anthropicApiKey",))
    del config["moltworker:adminEmails"]
    machine = Machine(config, tools={"pulumi", "docker"}, daemon=True)
    found = failures(checks(sim, machine))
    assert any(m.startswith("moltworker:anthropicApiKey: is stored in plain text") for m in found)
    assert any(m.startswith("moltworker:adminEmails: no admin") for m in found)


def test_without_the_cli_it_reads_the_stack_file(tmp_path: Path, sim: CloudflareSim) -> None:
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


def test_main_prints_one_line_per_finding_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        doctor,
        "run_checks",
        lambda _stack: [doctor.Finding(True, "fine"), doctor.Finding(False, "broken; fix it")],
    )
    assert doctor.main(["--stack", "dev"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["ok    fine", "FAIL  broken; fix it"]
    monkeypatch.setattr(doctor, "run_checks", lambda _stack: [doctor.Finding(True, "fine")])
    assert doctor.main(["--stack", "dev"]) == 0


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


def test_resources_of_the_old_deploy_path_in_state_are_named_with_the_commands() -> None:
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
    assert f"pulumi state delete '{urn}' --stack dev --yes" in found.message
    assert kept not in found.message  # the data is never touched
    fresh = Machine({}, tools={"pulumi"}, daemon=True)
    assert doctor.check_legacy_state("dev", fresh.which, fresh.run).ok


def _with_token_policies(sim: CloudflareSim, groups: list[str]) -> Callable[[], httpx.Client]:
    """The sim, plus the one call it lacks: the token reading its own policies."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/tokens/tok-user"):
            policy = {
                "id": "p1",
                "effect": "allow",
                "resources": {},
                "permission_groups": [{"id": f"g{i}", "name": g} for i, g in enumerate(groups)],
            }
            return httpx.Response(
                200,
                json={
                    "success": True,
                    "errors": [],
                    "messages": [],
                    "result": {"id": "tok-user", "name": "deploy", "policies": [policy]},
                },
            )
        return sim.handle(request)

    return lambda: httpx.Client(transport=httpx.MockTransport(handle))


def test_the_tokens_own_permissions_name_what_the_deploy_lacks(sim: CloudflareSim) -> None:
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
    # The plain sim cannot show the token's policies: a warning with the names, not a failure.
    warned = [f for f in checks(sim, machine) if f.warning and "own permissions" in f.message]
    assert warned and "'Workers Scripts Write' and 'Containers Write'" in warned[0].message
