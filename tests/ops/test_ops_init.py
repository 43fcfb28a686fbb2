"""`ops init` against a fake `pulumi` executable that records argv and stdin.

The answers are checked by the real settings loader and the preflight's secret checks; the
last test runs the real preflight (doctor) on what `init` stored, against the simulated
Cloudflare API.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_pulumi import install_fake_pulumi, read_calls

from ops.__main__ import main
from ops.context import Deps
from ops.errors import Console, OpsError, Redactor
from ops.init import Answers, loader_problems, run_doctor, run_init, stack_problems
from ops.pulumi_cli import ROOT, PulumiCli
from tests.infra.cf_api import CloudflareApi

pytestmark = pytest.mark.timeout(60)

ACCOUNT = "a" * 32
TOKEN = "cf-" + "T0k" * 14  # looks like a Cloudflare API token (40+ word characters)
ANTHROPIC = "sk-ant-api03-" + "k" * 40
OPENAI = "sk-proj-" + "o" * 40
TELEGRAM = "123456789:" + "t" * 35
SECRETS = (TOKEN, ANTHROPIC, OPENAI, TELEGRAM)


class Fake:
    def __init__(self, tmp_path: Path, state: dict[str, Any]) -> None:
        self.exe, self.state_file, self.log = install_fake_pulumi(tmp_path / "bin", state)
        self.env = {
            "PATH": os.environ["PATH"],
            "FAKE_PULUMI_LOG": str(self.log),
            "FAKE_PULUMI_STATE": str(self.state_file),
        }
        self.out, self.err = io.StringIO(), io.StringIO()
        self.console = Console(Redactor(), self.out, self.err)
        self.cli = PulumiCli(binary=str(self.exe), cwd=ROOT, env=self.env)

    def calls(self) -> list[dict[str, Any]]:
        return read_calls(self.log)

    def config(self, stack: str) -> dict[str, Any]:
        entries = json.loads(self.state_file.read_text())["stacks"][stack]["config"]
        return {k: (e["value"], e["secret"]) for k, e in entries.items()}

    def printed(self) -> str:
        return self.out.getvalue() + self.err.getvalue()

    def assert_no_secret_leaked(self) -> None:
        for call in self.calls():
            assert not any(s in arg for s in SECRETS for arg in call["argv"]), call["argv"]
        assert not any(s in self.printed() for s in SECRETS)


def new_state(**stacks: dict[str, Any]) -> dict[str, Any]:
    return {"user": "tester", "stacks": stacks}


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path, new_state())


class Script:
    """Scripted terminal: answers in order, recording each prompt and whether it was hidden."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[tuple[str, bool]] = []

    def _next(self, prompt: str, hidden: bool) -> str:
        self.prompts.append((prompt, hidden))
        assert self.answers, f"unexpected question {prompt!r}"
        return self.answers.pop(0)

    def line(self, prompt: str) -> str:
        return self._next(prompt, hidden=False)

    def secret(self, prompt: str) -> str:
        return self._next(prompt, hidden=True)

    def answers_for(self, console: Console) -> Answers:
        return Answers(console, read_line=self.line, read_secret=self.secret)


class DoctorCalls:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.stacks: list[str] = []

    def __call__(self, stack: str, _console: Console) -> bool:
        self.stacks.append(stack)
        return self.ok


FIRST_RUN = (
    "dev",  # stack
    ACCOUNT,
    TOKEN,
    "",  # custom domain: none
    "alice",  # workers.dev subdomain
    "me@example.com, ops@example.com",
    "anthropic",
    "",  # model: the provider's default
    "-",  # no fallbacks
    ANTHROPIC,
)


def test_a_first_run_creates_the_stack_and_stores_secrets_on_stdin(fake: Fake) -> None:
    script = Script(*FIRST_RUN)
    doctor = DoctorCalls()
    assert run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=doctor) == 0
    assert script.answers == []
    assert doctor.stacks == ["dev"]
    # The secrets were asked without echo, everything else with it.
    hidden = [prompt for prompt, hide in script.prompts if hide]
    assert len(hidden) == 2 and "API token" in hidden[0] and "anthropic" in hidden[1]

    assert fake.config("dev") == {
        "cloudflare:apiToken": (TOKEN, True),
        "moltworker:anthropicApiKey": (ANTHROPIC, True),
        "moltworker:accountId": (ACCOUNT, False),
        "moltworker:workersSubdomain": ("alice", False),
        "moltworker:adminEmails": (["me@example.com", "ops@example.com"], False),
        "moltworker:modelPrimary": ("anthropic/claude-sonnet-4-5", False),
        # No fallbacks: the list is removed (the loader's default is none).
    }
    calls = fake.calls()
    assert ["stack", "init", "dev", "--non-interactive"] in [c["argv"] for c in calls]
    secret_sets = [c for c in calls if c["argv"][:3] == ["config", "set", "--secret"]]
    assert sorted(c["stdin"] for c in secret_sets) == sorted([TOKEN + "\n", ANTHROPIC + "\n"])
    # Every call names its stack and none carries a secret.
    assert all("dev" in c["argv"] for c in calls if c["argv"][0] == "config")
    fake.assert_no_secret_leaked()
    # Nothing is written before every answer is in: the stack is created after the last one.
    first_write = next(i for i, c in enumerate(calls) if c["argv"][:2] == ["stack", "init"])
    assert all(c["argv"][:2] != ["config", "set"] for c in calls[:first_write])


def test_bad_answers_get_the_loaders_errors_and_are_asked_again(fake: Fake) -> None:
    script = Script(
        "Dev!",  # not a stack name ops accepts
        "Dev",  # accepted by Pulumi, refused by the loader (resource names are lowercase)
        "dev",
        "1234",
        ACCOUNT,
        "export CLOUDFLARE_API_TOKEN=" + TOKEN,  # a pasted assignment
        TELEGRAM,  # the wrong secret
        TOKEN,
        "agent.example.com",
        "not-a-zone",
        "b" * 32,
        "me@example",
        "me@example.com",
        "openai",
        "gpt 5",  # no provider/model form
        "",  # the provider's default model
        "openai/gpt-5-mini",  # the primary again
        "anthropic/claude-sonnet-4-5",
        ANTHROPIC,
        "OPENAI_API_KEY",  # a key name, not a key
        OPENAI,
    )
    assert (
        run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=DoctorCalls())
        == 0
    )
    assert script.answers == []
    printed = fake.printed()
    # Both stack names are refused with the stack-name rule's own sentence.
    for name in ("Dev!", "Dev"):
        assert stack_problems(name) and stack_problems(name)[0] in printed
    for expected in (
        "moltworker:accountId: '1234' is not a 32-character hex account id",
        "cloudflare:apiToken: holds an assignment (NAME=value), not a bare value",
        "cloudflare:apiToken: looks like the value for moltworker:telegramBotToken (swapped?)",
        "moltworker:zoneId: 'not-a-zone' is not a 32-character hex zone id",
        "moltworker:adminEmails: 'me@example' is not an email address",
        "moltworker:modelPrimary: 'openai/gpt 5' is not in provider/model form",
        "moltworker:modelFallbacks: 'openai/gpt-5-mini' is listed twice in the model chain",
        "moltworker:openaiApiKey: holds what looks like a key name, not a secret",
    ):
        assert expected in printed, (expected, printed)
    # The messages are the loader's own, word for word.
    assert loader_problems("dev", {"moltworker:accountId": "1234"}, [])[0] in printed
    config = fake.config("dev")
    assert config["moltworker:customDomain"] == ("agent.example.com", False)
    assert config["moltworker:zoneId"] == ("b" * 32, False)
    assert "moltworker:workersSubdomain" not in config
    assert config["moltworker:modelFallbacks"] == (["anthropic/claude-sonnet-4-5"], False)
    # Both providers in the chain need their key.
    assert config["moltworker:openaiApiKey"] == (OPENAI, True)
    assert config["moltworker:anthropicApiKey"] == (ANTHROPIC, True)
    fake.assert_no_secret_leaked()


def test_an_answer_that_stays_wrong_stops_without_writing(fake: Fake) -> None:
    script = Script("dev", *(["nope"] * 5))
    with pytest.raises(OpsError, match=r"no valid answer for moltworker:accountId after 5 tries"):
        run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=DoctorCalls())
    assert [c["argv"][:2] for c in fake.calls()] == [
        ["whoami", "--non-interactive"],
        ["stack", "ls"],
    ]


def test_an_existing_stack_keeps_what_enter_keeps(tmp_path: Path) -> None:
    stored = {
        "moltworker:accountId": {"value": ACCOUNT, "secret": False},
        "moltworker:workersSubdomain": {"value": "alice", "secret": False},
        "moltworker:adminEmails": {"value": ["me@example.com"], "secret": False},
        "moltworker:modelPrimary": {"value": "anthropic/claude-opus-4-1", "secret": False},
        "moltworker:modelFallbacks": {"value": ["openai/gpt-5-mini"], "secret": False},
        "moltworker:instanceType": {"value": "standard-2", "secret": False},
        "cloudflare:apiToken": {"value": TOKEN, "secret": True},
        "moltworker:anthropicApiKey": {"value": ANTHROPIC, "secret": True},
        "moltworker:openaiApiKey": {"value": OPENAI, "secret": True},
    }
    fake = Fake(tmp_path, new_state(prod={"config": stored}))
    # Enter everywhere: nothing changes but what the stack already held is written back.
    script = Script(*([""] * 10))
    code = run_init(
        fake.cli, script.answers_for(fake.console), fake.console, stack="prod", doctor=DoctorCalls()
    )
    assert code == 0 and script.answers == []
    assert "[anthropic/claude-opus-4-1]" in " ".join(p for p, _ in script.prompts)
    after = fake.config("prod")
    assert after == {k: (e["value"], e["secret"]) for k, e in stored.items()}
    argv = [c["argv"] for c in fake.calls()]
    # No secret re-set, no stack re-created, keys not asked about left alone.
    assert not any(a[:3] == ["config", "set", "--secret"] for a in argv)
    assert not any(a[:2] == ["stack", "init"] for a in argv)
    assert not any("moltworker:instanceType" in a for a in argv)
    fake.assert_no_secret_leaked()


def test_a_fresh_clone_with_an_example_stack_file_gets_one_hostname(tmp_path: Path) -> None:
    example = {
        "moltworker:accountId": {"value": "0" * 32, "secret": False},
        "moltworker:workersSubdomain": {"value": "your-subdomain", "secret": False},
        "moltworker:modelFallbacks": {"value": ["openai/gpt-5-mini"], "secret": False},
        "moltworker:ephemeral": {"value": "true", "secret": False},
    }
    fake = Fake(tmp_path, {"user": "tester", "stacks": {}, "files": {"dev": example}})
    script = Script(
        "dev",
        ACCOUNT,
        TOKEN,
        "agent.example.com",
        "c" * 32,
        "me@example.com",
        "openai",
        "",
        "",
        OPENAI,
    )
    assert (
        run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=DoctorCalls())
        == 0
    )
    assert script.answers == []
    config = fake.config("dev")
    # The file's workers.dev placeholder would make two hostnames: it is removed.
    assert "moltworker:workersSubdomain" not in config
    assert config["moltworker:customDomain"] == ("agent.example.com", False)
    # The answer (no fallbacks) replaces the file's list; keys not asked about stay.
    assert "moltworker:modelFallbacks" not in config
    assert config["moltworker:ephemeral"] == ("true", False)
    fake.assert_no_secret_leaked()


def non_interactive(fake: Fake, env: dict[str, str]) -> tuple[int, str]:
    deps = Deps(env={**fake.env, **env}, out=fake.out, err=fake.err)
    code = main(["--pulumi", str(fake.exe), "init", "--non-interactive"], deps)
    return code, fake.printed()


GOOD_ENV = {
    "MOLTWORKER_STACK": "staging",
    "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
    "CLOUDFLARE_API_TOKEN": TOKEN,
    "MOLTWORKER_WORKERS_SUBDOMAIN": "alice",
    "MOLTWORKER_ADMIN_EMAILS": "me@example.com",
    "MOLTWORKER_MODEL": "openai/gpt-5-mini",
    "MOLTWORKER_MODEL_FALLBACKS": "none",
    "OPENAI_API_KEY": OPENAI,
}


def test_non_interactive_reports_every_problem_at_once_and_writes_nothing(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ops.init.run_doctor", DoctorCalls())
    env = dict(
        GOOD_ENV,
        CLOUDFLARE_ACCOUNT_ID="xyz",
        MOLTWORKER_ADMIN_EMAILS="root",
        OPENAI_API_KEY="sk-ant-api03-" + "z" * 40,
    )
    del env["CLOUDFLARE_API_TOKEN"]
    code, printed = non_interactive(fake, env)
    assert code == 1
    assert "4 problem(s) in the answers; nothing was changed" in printed
    assert "moltworker:accountId: 'xyz' is not a 32-character hex account id" in printed
    assert "(from $CLOUDFLARE_ACCOUNT_ID)" in printed
    assert "cloudflare:apiToken: is required" in printed and "$CLOUDFLARE_API_TOKEN" in printed
    assert "'root' is not an email address" in printed
    assert "moltworker:openaiApiKey: looks like the value for moltworker:anthropicApiKey" in printed
    assert "z" * 40 not in printed
    assert not any(c["argv"][0] in ("config", "up") for c in fake.calls())
    assert not any(c["argv"][:2] == ["stack", "init"] for c in fake.calls())


def test_non_interactive_configures_a_stack_from_the_environment(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    doctor = DoctorCalls()
    monkeypatch.setattr("ops.init.run_doctor", doctor)
    code, printed = non_interactive(fake, GOOD_ENV)
    assert code == 0, printed
    assert doctor.stacks == ["staging"]
    config = fake.config("staging")
    assert config["cloudflare:apiToken"] == (TOKEN, True)
    assert config["moltworker:openaiApiKey"] == (OPENAI, True)
    assert config["moltworker:modelPrimary"] == ("openai/gpt-5-mini", False)
    assert "moltworker:anthropicApiKey" not in config  # no anthropic model in the chain
    fake.assert_no_secret_leaked()

    # A failing preflight fails the command (CI sees it), after the config is stored.
    monkeypatch.setattr("ops.init.run_doctor", DoctorCalls(ok=False))
    code, printed = non_interactive(fake, GOOD_ENV)
    assert code == 1 and "fix the problems above" in printed


def test_not_logged_in_stops_before_any_question(tmp_path: Path) -> None:
    fake = Fake(tmp_path, {"user": None, "stacks": {}})
    script = Script()
    with pytest.raises(OpsError, match="Log in to the state backend"):
        run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=DoctorCalls())
    assert script.prompts == []


def test_a_passphrase_backend_without_a_passphrase_fails_before_any_value(tmp_path: Path) -> None:
    fake = Fake(tmp_path, {"user": "tester", "stacks": {}, "passphrase_required": True})
    script = Script(*FIRST_RUN)
    with pytest.raises(OpsError, match="Set PULUMI_CONFIG_PASSPHRASE"):
        run_init(fake.cli, script.answers_for(fake.console), fake.console, doctor=DoctorCalls())
    assert not any(c["argv"][:2] == ["config", "set"] for c in fake.calls())


def test_without_a_terminal_init_refuses_to_read_secrets(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN))
    deps = Deps(env=fake.env, out=fake.out, err=fake.err)
    assert main(["--pulumi", str(fake.exe), "init"], deps) == 1
    assert "pass --non-interactive" in fake.printed()
    assert fake.calls() == []


@pytest.fixture
def doctor_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """The preflight's PATH: the fake pulumi, an image builder that answers, and node."""
    tools = json.loads((ROOT / ".cache" / "tools.json").read_text())
    builder = tmp_path / "bin" / "docker"

    def install() -> None:
        builder.write_text("#!/bin/sh\necho '{}'\n")
        builder.chmod(0o755)
        monkeypatch.setenv(
            "PATH", os.pathsep.join([str(tmp_path / "bin"), str(Path(tools["node"]).parent)])
        )
        monkeypatch.setenv("WRANGLER_DOCKER_BIN", str(builder))

    yield install


def test_the_real_preflight_passes_on_what_init_stored(
    fake: Fake, doctor_path: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = CloudflareApi(token=TOKEN, account_id=ACCOUNT, workers_subdomain="alice")
    for name, value in fake.env.items():
        monkeypatch.setenv(name, value)
    doctor_path()
    script = Script(*FIRST_RUN)
    code = run_init(
        fake.cli,
        script.answers_for(fake.console),
        fake.console,
        doctor=lambda stack, console: run_doctor(stack, console, http_client_factory=sim.client),
    )
    printed = fake.printed()
    assert code == 0, printed
    assert "ok    stack configuration is complete and valid" in printed
    assert "ok    2 secret(s) look like what their names say" in printed
    assert "FAIL" not in printed
    assert "/client/v4/user/tokens/verify" in {r.path for r in sim.requests}
    fake.assert_no_secret_leaked()
