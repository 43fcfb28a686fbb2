"""`ops upgrade`: the preflight with real OpenClaw releases and with stand-in versions, then
deploy, wait and roll back against a fake `pulumi` and a fake Worker admin status.

The real pinned OpenClaw accepts what the stack renders; a real older release whose schema
cannot take it (`openclaw_releases.REFUSING`, installed by the production code path under
.cache/openclaw-versions/, early by scripts/check.py) is refused with its own messages. The
command-level paths after the preflight (rehearsal refusal, rollback, keep) use stand-in
launchers that answer `config validate --json` the way OpenClaw does.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_pulumi import install_fake_pulumi, read_calls
from openclaw_releases import REFUSING

from infra.settings import default_openclaw_version
from ops import upgrade
from ops.__main__ import main
from ops.context import Deps, run_async
from ops.errors import Console, OpsError, Redactor
from ops.pulumi_cli import ROOT, PulumiCli

pytestmark = pytest.mark.timeout(120)

PINNED = default_openclaw_version()
VERSIONS = ROOT / ".cache" / "openclaw-versions"
NEW = "2099.1.1"  # a stand-in "new release"
CLIENT_ID = "client-id-" + "i" * 20
CLIENT_SECRET = "client-secret-" + "s" * 40
STACK_CONFIG = {
    "moltworker:accountId": "a" * 32,
    "moltworker:workersSubdomain": "alice",
    "moltworker:adminEmails": ["me@example.com"],
    "moltworker:modelPrimary": "anthropic/claude-sonnet-4-5",
    "moltworker:modelFallbacks": ["openai/gpt-5-mini"],
    "moltworker:telegramDmPolicy": "allowlist",
}
# Every channel has its token, so the rehearsed config has all three channels.
SECRET_KEYS = (
    "cloudflare:apiToken",
    "moltworker:anthropicApiKey",
    "moltworker:telegramBotToken",
    "moltworker:discordBotToken",
    "moltworker:slackBotToken",
    "moltworker:slackAppToken",
)
OUTPUTS = {
    "workerUrl": "https://moltworker-prod.alice.workers.dev",
    "accessClientId": CLIENT_ID,
    "accessClientSecret": CLIENT_SECRET,
}


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        config: dict[str, Any] = {k: {"value": v, "secret": False} for k, v in STACK_CONFIG.items()}
        for key in SECRET_KEYS:
            config[key] = {"value": "secret-value-" + "x" * 30, "secret": True}
        state = {"user": "tester", "stacks": {"prod": {"config": config, "outputs": OUTPUTS}}}
        self.exe, self.state_file, self.log = install_fake_pulumi(tmp_path / "bin", state)
        self.env = {
            "PATH": os.environ["PATH"],
            "FAKE_PULUMI_LOG": str(self.log),
            "FAKE_PULUMI_STATE": str(self.state_file),
        }
        self.out, self.err = io.StringIO(), io.StringIO()
        self.console = Console(Redactor(), self.out, self.err)
        self.cli = PulumiCli(binary=str(self.exe), cwd=ROOT, env=self.env)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())["stacks"]["prod"]

    def deployed_versions(self) -> list[str | None]:
        return [up.get("moltworker:openclawVersion") for up in self.state().get("ups", [])]

    def printed(self) -> str:
        return self.out.getvalue() + self.err.getvalue()


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path)


def stand_in_openclaw(path: Path, version: str, issues: list[dict[str, str]] | None) -> Path:
    """A launcher that answers `--version` and `config validate --json` like OpenClaw."""
    verdict = {"valid": not issues, "issues": issues or [], "warnings": []}
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "OpenClaw {version} (standin)"; exit 0; fi\n'
        f'if [ "$1" = "config" ] && [ "$2" = "validate" ]; then\n'
        f"  echo '{json.dumps(verdict)}'\n"
        f"  exit {1 if issues else 0}\n"
        "fi\n"
        "exit 2\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Stand-in versions for the command-level tests.

    The stack's store (read through `ops backup`'s manager) is replaced by a one-file state, and
    the boot rehearsal by the verdict `rehearsals` holds: the rehearsal itself is tested below
    with the real runtime, on the real pinned OpenClaw and on a launcher whose gateway crashes.
    """
    launchers: dict[str, Path] = {}

    def fetch(_outputs: Any, into: Path, _console: Console) -> str:
        into.mkdir(parents=True, exist_ok=True)
        (into / "agent-notes.md").write_text("remember the milk\n")
        return "gen-1"

    monkeypatch.setattr(upgrade, "fetch_state", fetch)
    monkeypatch.setattr(upgrade, "rehearse_boot", lambda env, oc, state, timeout: None)
    # Keeping and restoring through the real store: test_a_rollback_restores_the_kept_...
    monkeypatch.setattr(
        upgrade, "keep_snapshot", lambda _o, ident, _v, console: console.print(f"kept {ident}")
    )
    monkeypatch.setattr(
        upgrade,
        "restore_for_rollback",
        lambda _o, ident, _version, console: console.print(f"back to {ident}"),
    )

    def install(version: str, _env: Any) -> Path:
        assert version in launchers, f"the test did not expect openclaw@{version} to be installed"
        return launchers[version]

    monkeypatch.setattr(upgrade, "installed_openclaw", install)
    return launchers


def test_the_real_pinned_openclaw_accepts_what_the_stack_renders(stack: Stack) -> None:
    verdict = upgrade.preflight(stack.cli, "prod", PINNED, stack.env, stack.console)
    assert verdict.ok, (verdict.issues, stack.printed())
    # The launcher the bootstrap installed really is the pinned version.
    assert verdict.reported_version == PINNED
    # The config rendered from the stack's settings: channels, models, the AI Gateway.
    env = upgrade.container_env(upgrade.stack_settings(stack.cli, "prod"))
    assert env["MODEL_PRIMARY"] == "anthropic/claude-sonnet-4-5"
    assert env["MODEL_FALLBACKS"] == "openai/gpt-5-mini"
    assert env["TELEGRAM_DM_POLICY"] == "allowlist" and "TELEGRAM_BOT_TOKEN" in env
    assert env["AI_GATEWAY_BASE_URL"].startswith("https://gateway.ai.cloudflare.com/v1/")
    # Nothing on the stack changed.
    assert not any(
        c["argv"][:2] == ["config", "set"] or c["argv"][0] == "up" for c in read_calls(stack.log)
    )


def cli_run(stack: Stack, *argv: str, transport: httpx.BaseTransport | None = None) -> int:
    deps = Deps(env=stack.env, out=stack.out, err=stack.err, http_transport=transport)
    return main(["--pulumi", str(stack.exe), *argv], deps)


def refused_upgrade(stack: Stack, version: str, worker: FakeWorker) -> str:
    """Run `ops upgrade --to version`, which must refuse before deploy; what it printed."""
    transport = httpx.MockTransport(worker.handle)
    code = cli_run(stack, "upgrade", "--stack", "prod", "--to", version, transport=transport)
    printed = stack.printed()
    assert code == 1, printed
    assert "upgrade refused before deploy" in printed and "the stack was not changed" in printed
    calls = read_calls(stack.log)
    assert not any(c["argv"][:2] == ["config", "set"] or c["argv"][0] == "up" for c in calls)
    return printed


def test_an_upgrade_the_config_cannot_satisfy_is_refused_before_deploy(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    issue = {"path": "agents.defaults.model", "message": 'Unrecognized key: "fallbacks"'}
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, [issue])
    worker = FakeWorker(stack, broken=set())
    printed = refused_upgrade(stack, NEW, worker)
    # OpenClaw's own message, word for word.
    assert 'agents.defaults.model: Unrecognized key: "fallbacks"' in printed
    assert worker.requests == []  # the config is judged before the stack is touched


@pytest.mark.timeout(900)  # run alone, the test installs the release (npm, ~470 MB)
def test_a_real_release_whose_schema_refuses_the_config_is_refused_before_deploy(
    stack: Stack,
) -> None:
    worker = FakeWorker(stack, broken=set())
    printed = refused_upgrade(stack, REFUSING, worker)
    # That release's own `config validate` words, for keys this project renders.
    assert 'gateway: Unrecognized key: "publicOrigin"' in printed, printed
    assert "models.providers.anthropic.models" in printed, printed
    assert f"openclaw@{REFUSING} refuses the config prod renders" in printed
    # Refused on the config alone: no snapshot was asked for.
    assert worker.requests == []
    # It really is that release, from the production install path.
    launcher = VERSIONS / REFUSING / "node_modules" / ".bin" / "openclaw"
    assert launcher.exists()


def test_a_version_that_fails_the_rehearsal_is_refused_and_its_snapshot_not_kept(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, None)
    booted: list[Path | None] = []

    def crash(_env: Any, _openclaw: Path, state: Path | None, _timeout: float) -> str:
        booted.append(state)
        return "gateway exited with code 1: database schema 42 is newer than this build"

    monkeypatch.setattr(upgrade, "rehearse_boot", crash)
    worker = FakeWorker(stack, broken=set())
    printed = refused_upgrade(stack, NEW, worker)
    assert "database schema 42 is newer than this build" in printed
    # The rehearsal booted on the snapshot taken for it, which is not kept after a refusal.
    assert worker.snapshots_before_up == [True] and booted and booted[0] is not None
    assert "kept gen-7" not in printed


class FakeWorker:
    """The admin status as the Worker answers it, for whichever version was deployed last."""

    def __init__(self, stack: Stack, broken: set[str]) -> None:
        self.stack = stack
        self.broken = broken
        self.requests: list[httpx.Request] = []
        self.snapshots_before_up: list[bool] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("CF-Access-Client-Secret") != CLIENT_SECRET:
            return httpx.Response(302, headers={"location": "https://team.cloudflareaccess.com"})
        if request.url.path == "/api/admin/snapshots/now" and request.method == "POST":
            # Taken before anything is deployed, while the current version runs.
            self.snapshots_before_up.append(self.stack.deployed_versions() == [])
            return httpx.Response(200, json={"id": "gen-7", "changed": True})
        assert request.url.path == "/api/admin/status"
        deployed = self.stack.deployed_versions()
        version = (deployed[-1] if deployed else None) or PINNED
        if version in self.broken:
            return httpx.Response(
                200,
                json={
                    "phase": "failed",
                    "gateway": {"state": "exited"},
                    "openclaw_version": version,
                    "last_error": "gateway exited with code 1 before it was ready",
                },
            )
        body = {"phase": "ready", "gateway": {"state": "ready"}, "openclaw_version": version}
        return httpx.Response(200, json=body)


def test_a_new_version_that_fails_to_start_is_rolled_back(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, None)
    worker = FakeWorker(stack, broken={NEW})
    code = cli_run(
        stack,
        "upgrade",
        "--stack",
        "prod",
        "--to",
        NEW,
        "--wait",
        "0.3",
        "--poll-interval",
        "0.05",
        transport=httpx.MockTransport(worker.handle),
    )
    printed = stack.printed()
    assert code == 1, printed
    # Deployed, found not ready, and deployed again with the previous version.
    assert stack.deployed_versions() == [NEW, PINNED]
    # Each `pulumi up` names the version it deploys as rehearsed, so the Worker deploy lets it
    # through (infra.dynamic.worker_deploy.refuse_unrehearsed_upgrade).
    ups = [c["rehearsed"] for c in read_calls(stack.log) if c["argv"][0] == "up"]
    assert ups == [NEW, PINNED]
    assert stack.state()["config"]["moltworker:openclawVersion"]["value"] == PINNED
    assert f"openclaw {NEW} was not ready within 0s" in printed
    assert "gateway exited with code 1 before it was ready" in printed
    assert f"rolled back prod to openclaw {PINNED}: ready with openclaw {PINNED}" in printed
    assert worker.snapshots_before_up == [True]
    assert "snapshot gen-7 of prod taken before the switch" in printed
    assert "kept gen-7" in printed
    # The state is compared before the previous version is deployed again.
    assert printed.index("back to gen-7") < printed.index("rolled back prod")
    assert CLIENT_SECRET not in printed


def test_a_new_version_that_comes_up_is_kept(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, None)
    worker = FakeWorker(stack, broken=set())
    code = cli_run(
        stack,
        "upgrade",
        "--stack",
        "prod",
        "--to",
        NEW,
        "--wait",
        "2",
        "--poll-interval",
        "0.05",
        transport=httpx.MockTransport(worker.handle),
    )
    assert code == 0, stack.printed()
    assert stack.deployed_versions() == [NEW]
    assert f"upgraded prod: ready with openclaw {NEW}" in stack.printed()


def test_a_launcher_of_another_version_is_refused(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", "2099.1.0", None)
    verdict = upgrade.preflight(stack.cli, "prod", NEW, stack.env, stack.console)
    assert verdict.issues == [f"the installed launcher reports 2099.1.0, not {NEW}"]


def test_check_lists_newer_versions_and_preflights_the_newest(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = ["2026.1.1", PINNED, "2099.1.1-beta.1", "2099.1.1", "2099.1.2", "2099.10.1"]
    monkeypatch.setattr(upgrade, "published_versions", lambda _env: published)
    stand_ins["2099.10.1"] = stand_in_openclaw(tmp_path / "oc", "2099.10.1", None)
    assert cli_run(stack, "upgrade", "--stack", "prod", "--check") == 0
    printed = stack.printed()
    assert "newer on the registry: 2099.1.1, 2099.1.2, 2099.10.1" in printed
    assert "preflight: openclaw@2099.10.1 accepts the config prod renders" in printed
    assert not any(c["argv"][0] == "up" for c in read_calls(stack.log))


def test_only_exact_versions_are_accepted(stack: Stack) -> None:
    with pytest.raises(OpsError, match="'latest' is not an exact version"):
        upgrade.installed_openclaw("latest", stack.env)
    assert upgrade.version_problems("2026.9.6") == []
    assert upgrade.newer_versions(["2026.9.10", "2026.9.9", "2026.10.0-rc.1"], "2026.9.9") == [
        "2026.9.10"
    ]


def test_container_settings_the_runtime_refuses_stop_the_preflight(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The program only deploys what the runtime accepts (tests/contract/test_container_env.py);
    # a variable the runtime refuses stands for a future drift between the two.
    real = upgrade.container_env
    monkeypatch.setattr(
        upgrade, "container_env", lambda s: {**real(s), "TELEGRAM_DM_POLICY": "everyone"}
    )
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, None)
    with pytest.raises(OpsError, match="TELEGRAM_DM_POLICY"):
        upgrade.preflight(stack.cli, "prod", NEW, stack.env, stack.console)


def test_a_stack_without_a_channel_token_passes_the_settings_check(
    stack: Stack, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    state = json.loads(stack.state_file.read_text())
    del state["stacks"]["prod"]["config"]["moltworker:discordBotToken"]
    stack.state_file.write_text(json.dumps(state))
    stand_ins[NEW] = stand_in_openclaw(tmp_path / "openclaw-new", NEW, None)
    env = upgrade.container_env(upgrade.stack_settings(stack.cli, "prod"))
    assert "DISCORD_DM_POLICY" not in env
    assert "TELEGRAM_DM_POLICY" in env


CRASHING = """#!/bin/sh
case "$1" in
  config) echo '{"valid":true,"issues":[],"warnings":[]}' ;;
  --version) echo 'OpenClaw 2099.1.1 (crashing stand-in)' ;;
  gateway) echo "Error: database schema 42 is newer than this build understands" >&2; exit 1 ;;
  *) exit 2 ;;
esac
"""


def test_the_rehearsal_refuses_a_version_that_does_not_start_on_the_state(
    stack: Stack, tmp_path: Path
) -> None:
    launcher = tmp_path / "openclaw-crashing"
    launcher.write_text(CRASHING)
    launcher.chmod(0o755)
    state = tmp_path / "state-copy"
    state.mkdir()
    (state / "agent-notes.md").write_text("remember the milk\n")
    env = upgrade.container_env(upgrade.stack_settings(stack.cli, "prod"))
    failure = upgrade.rehearse_boot(env, launcher, state, timeout_s=8)
    assert failure is not None
    # OpenClaw's own words reach the refusal, through the runtime's log.
    assert "database schema 42 is newer than this build understands" in failure


def test_the_rehearsal_boots_the_real_pinned_openclaw_on_a_copy_of_the_state(
    stack: Stack, tmp_path: Path
) -> None:
    state = tmp_path / "state-copy"
    (state / "workspace").mkdir(parents=True)
    (state / "workspace" / "MEMORY.md").write_text("the user likes tea\n")
    env = upgrade.container_env(upgrade.stack_settings(stack.cli, "prod"))
    openclaw = upgrade.installed_openclaw(PINNED, stack.env)
    assert upgrade.rehearse_boot(env, openclaw, state, timeout_s=100) is None


@pytest.mark.s3
def test_the_rehearsal_state_is_the_stacks_newest_generation(
    tmp_path: Path, moto_endpoint: str, make_bucket: Callable[[], str]
) -> None:
    from test_ops_backup import manager
    from test_ops_backup import outputs as outputs_file

    from ops.outputs import StackOutputs

    bucket = make_bucket()
    state = tmp_path / "runtime-state"

    async def write() -> str:
        m = manager(moto_endpoint, bucket, state)
        await m.restore()
        (state / "workspace").mkdir(parents=True)
        (state / "workspace" / "MEMORY.md").write_text("the user likes tea\n")
        info = await m.snapshot("before the upgrade")
        assert info is not None
        return info.id

    ident = asyncio.run(write())
    console = Console(Redactor(), io.StringIO(), io.StringIO())
    outputs = StackOutputs.from_file(
        outputs_file(tmp_path, moto_endpoint, bucket), "prod", console.redact
    )
    copy = tmp_path / "copy"
    assert upgrade.fetch_state(outputs, copy, console) == ident
    assert (copy / "workspace" / "MEMORY.md").read_text() == "the user likes tea\n"


class MigratingWorker(FakeWorker):
    """The Worker and runtime against a real store: the snapshot endpoint records the state, and
    the broken new version first rewrites the state (a schema migration or plain new rows), as
    OpenClaw does on start, before it fails."""

    def __init__(self, stack: Stack, record: Callable[..., Any], migrate: bool) -> None:
        super().__init__(stack, broken={NEW})
        self.record = record
        self.migrate = migrate
        self.migrated = False
        self.snapshot_id = ""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/admin/snapshots/now":
            info = self.record("requested")
            self.snapshot_id = info.id
            return httpx.Response(200, json={"id": info.id, "changed": False})
        deployed = self.stack.deployed_versions()
        if deployed and deployed[-1] == NEW and not self.migrated:
            self.migrated = True
            self.record("new version", self.change)
        return super().handle(request)

    def change(self, state: Path) -> None:
        db = sqlite3.connect(state / "state.sqlite")
        if self.migrate:
            db.execute("ALTER TABLE kv ADD COLUMN migrated_at TEXT")
            db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO kv (k, v) VALUES ('new', 'written by the new version')")
        db.commit()
        db.close()


def old_version_state(state: Path) -> None:
    state.mkdir(exist_ok=True)
    db = sqlite3.connect(state / "state.sqlite")
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO kv VALUES ('written by', 'the old version')")
    db.commit()
    db.close()


def read_kv(state: Path) -> tuple[list[tuple[str, str]], int]:
    db = sqlite3.connect(state / "state.sqlite")
    try:
        rows = db.execute("SELECT k, v FROM kv").fetchall()
        return rows, db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


@pytest.mark.s3
@pytest.mark.parametrize("migrate", [True, False], ids=["schema-changed", "rows-only"])
def test_a_rollback_makes_the_pre_upgrade_generation_the_newest_and_keeps_the_new_one(
    stack: Stack,
    tmp_path: Path,
    moto_endpoint: str,
    make_bucket: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    migrate: bool,
) -> None:
    from sandbox_runtime.snapshots import HeadConflict
    from test_ops_backup import manager
    from test_ops_backup import outputs as outputs_file

    bucket = make_bucket()
    state = tmp_path / "runtime-state"
    # The failing container's runtime: it restored HEAD at its boot and snapshots later.
    failing = manager(moto_endpoint, bucket, tmp_path / "failing-container")

    def record(reason: str, change: Callable[[Path], None] | None = None) -> Any:
        """What the runtime does: restore HEAD, let the gateway change the state, snapshot."""

        async def run() -> Any:
            m = manager(moto_endpoint, bucket, state)
            await m.restore()
            if change is not None:
                change(state)
            # Nothing changed: the endpoint answers with the generation HEAD names.
            info = await m.snapshot(reason) or (await m.list())[0]
            if change is not None:
                await failing.restore()  # the same container, as it now stands
            return info

        return run_async(run())

    record("old version", old_version_state)
    # The stack's outputs point at the test bucket, as `pulumi stack output` would.
    files = json.loads(stack.state_file.read_text())
    stored = json.loads(outputs_file(tmp_path, moto_endpoint, bucket).read_text())
    files["stacks"]["prod"]["outputs"] = {**stored, **OUTPUTS}
    stack.state_file.write_text(json.dumps(files))
    monkeypatch.setattr(upgrade, "rehearse_boot", lambda env, oc, state, timeout: None)
    monkeypatch.setattr(
        upgrade, "installed_openclaw", lambda v, _env: stand_in_openclaw(tmp_path / "oc", v, None)
    )
    worker = MigratingWorker(stack, record, migrate)
    code = cli_run(
        stack,
        "upgrade",
        "--stack",
        "prod",
        "--to",
        NEW,
        "--wait",
        "0.3",
        "--poll-interval",
        "0.05",
        transport=httpx.MockTransport(worker.handle),
    )
    printed = stack.printed()
    assert code == 1, printed
    assert stack.deployed_versions() == [NEW, PINNED]
    reader = manager(moto_endpoint, bucket, tmp_path / "reader")
    listed = run_async(reader.list())
    pre = next(s for s in listed if s.id == worker.snapshot_id)
    written = next(s for s in listed if s.reason == "new version")
    assert pre.reason == "old version"
    assert f"snapshot {pre.id} of prod taken before the switch" in printed
    assert f"snapshot {pre.id} is kept" in printed
    # Both the pre-upgrade generation and what the new version wrote are kept.
    kept = run_async(manager(moto_endpoint, bucket, tmp_path / "r2").kept_generations())
    assert {k.id for k in kept} == {pre.id, written.id}
    assert listed[0].reason == f"rollback to {pre.id}"
    assert (
        "changed the state (" in printed and f"in snapshot {written.id}, which is kept" in printed
    )
    if migrate:
        assert "the schema of state.sqlite" in printed
    else:
        assert "the schema of" not in printed and "1 file changed" in printed
    # What the previous version's container restores on its boot: HEAD, the old state.
    restored = tmp_path / "after-rollback"
    run_async(manager(moto_endpoint, bucket, restored).restore())
    assert read_kv(restored) == ([("written by", "the old version")], 1)
    # The failing container's final snapshot cannot overwrite it.
    (failing.state_dir / "late.md").write_text("written at SIGTERM\n")
    with pytest.raises(HeadConflict):
        run_async(failing.snapshot("final"))
    assert printed.index("rollback:") < printed.index("rolled back prod")
    assert CLIENT_SECRET not in printed


@pytest.mark.s3
def test_a_rollback_with_nothing_recorded_still_fences_the_failing_container(
    stack: Stack,
    tmp_path: Path,
    moto_endpoint: str,
    make_bucket: Callable[[], str],
) -> None:
    from sandbox_runtime.snapshots import HeadConflict
    from test_ops_backup import manager
    from test_ops_backup import outputs as outputs_file

    from ops.outputs import StackOutputs

    bucket = make_bucket()
    runtime = manager(moto_endpoint, bucket, tmp_path / "runtime-state")

    async def before() -> str:
        await runtime.restore()
        old_version_state(runtime.state_dir)
        info = await runtime.snapshot("old version")
        assert info is not None
        return info.id

    ident = run_async(before())
    # The new version's container booted on that generation and has not snapshotted yet.
    failing = manager(moto_endpoint, bucket, tmp_path / "failing-container")
    run_async(failing.restore())
    out = io.StringIO()
    console = Console(Redactor(), out, out)
    outputs = StackOutputs.from_file(
        outputs_file(tmp_path, moto_endpoint, bucket), "prod", console.redact
    )
    upgrade.restore_for_rollback(outputs, ident, NEW, console)
    printed = out.getvalue()
    assert f"nothing was recorded since snapshot {ident}" in printed
    listed = run_async(manager(moto_endpoint, bucket, tmp_path / "reader").list())
    assert listed[0].reason == f"rollback to {ident}" and listed[1].id == ident
    (failing.state_dir / "state.sqlite").write_bytes(b"migrated at SIGTERM")
    with pytest.raises(HeadConflict):
        run_async(failing.snapshot("final"))
