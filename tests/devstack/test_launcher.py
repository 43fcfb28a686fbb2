"""The launcher's own logic, without starting anything: credentials files, ports, the summary."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from devstack import LocalStack, LocalStackConfig
from devstack.__main__ import main as launcher_main
from devstack.__main__ import summary
from devstack.procs import free_ports
from devstack.secrets import (
    RUNTIME_SECRETS,
    RUNTIME_SECRETS_FILE,
    SecretsError,
    admin_token,
    fresh_secrets,
    local_secrets,
    runtime_secrets,
)
from devstack.stack import Ports

pytestmark = pytest.mark.timeout(30)


def test_admin_token_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "local" / "admin-token"
    first = admin_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert admin_token(path) == first


def test_admin_token_refuses_a_shared_or_garbled_file(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    admin_token(path)
    path.chmod(0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        admin_token(path)
    path.chmod(0o600)
    path.write_text("not a token\n")
    with pytest.raises(SecretsError, match="delete it"):
        admin_token(path)


def test_runtime_secrets_generated_once_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "local" / "secrets.json"
    first = runtime_secrets(path)
    assert sorted(first) == sorted(RUNTIME_SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert runtime_secrets(path) == first  # reused: the snapshot key must not change
    assert len(base64.b64decode(first["MOLT_SNAPSHOT_KEY"])) == 32
    path.chmod(0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        runtime_secrets(path)
    path.chmod(0o600)
    path.write_text(json.dumps({k: v for k, v in first.items() if k != "MOLT_SNAPSHOT_KEY"}))
    with pytest.raises(SecretsError, match="lacks MOLT_SNAPSHOT_KEY"):
        runtime_secrets(path)
    path.write_text("not json")
    with pytest.raises(SecretsError, match="move the file aside"):
        runtime_secrets(path)


def test_local_secrets_are_the_runtimes_plus_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devstack.secrets as module

    monkeypatch.setattr(module, "RUNTIME_SECRETS_FILE", tmp_path / "secrets.json")
    monkeypatch.setattr(module, "ADMIN_TOKEN_FILE", tmp_path / "admin-token")
    values = local_secrets()
    assert values == runtime_secrets(tmp_path / "secrets.json") | {
        "LOCAL_ADMIN_TOKEN": (tmp_path / "admin-token").read_text().strip()
    }
    # The one generator makes the same kinds of values, unsaved, for tests and benchmarks.
    assert set(fresh_secrets()) == set(values)


def test_fresh_secrets_are_fresh() -> None:
    a, b = fresh_secrets(), fresh_secrets()
    assert set(a) == set(b)
    assert all(a[name] != b[name] for name in a)


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20


def _stack(tmp_path: Path, model_env: dict[str, str], runtime_only: bool = False) -> LocalStack:
    config = LocalStackConfig(
        home=tmp_path, secrets=fresh_secrets(), model_env=model_env, runtime_only=runtime_only
    )
    stack = LocalStack(config)
    stack.secrets = dict(stack.config.secrets or {})
    stack.ports = Ports(8787, 40001, 40002, 40003, 40004, 40005)
    return stack


def test_summary_says_where_credentials_are_never_what(tmp_path: Path) -> None:
    stack = _stack(tmp_path, {})
    text = summary(stack, show_secrets=False)
    assert "http://127.0.0.1:8787/" in text
    assert ".cache/local/secrets.json" in text and "admin-token" in text
    for value in stack.secrets.values():
        assert value not in text
    assert "chat needs a model provider key" in text
    assert "ANTHROPIC_API_KEY" in text and "OPENAI_API_KEY" in text

    shown = summary(stack, show_secrets=True)
    assert stack.secrets["OPENCLAW_GATEWAY_TOKEN"] in shown
    assert stack.secrets["LOCAL_ADMIN_TOKEN"] in shown
    assert stack.secrets["MOLT_CONTROL_SECRET"] not in shown


def test_a_key_picks_that_providers_default_model(tmp_path: Path) -> None:
    env = _stack(tmp_path, {"OPENAI_API_KEY": "sk-test-123456789"}).runtime_env()
    assert env["MODEL_PRIMARY"] == "openai/gpt-5"
    env = _stack(tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-123456789"}).runtime_env()
    assert env["MODEL_PRIMARY"] == "anthropic/claude-sonnet-4-5"
    env = _stack(tmp_path, {}).runtime_env()
    assert "MODEL_PRIMARY" not in env
    # Without a key the summary says chat needs one, and how to give it.
    text = summary(_stack(tmp_path, {}), False)
    assert "chat needs a model provider key" in text
    assert "ANTHROPIC_API_KEY" in text and "OPENAI_API_KEY" in text
    text = summary(_stack(tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-123456789"}), False)
    assert "anthropic/claude-sonnet-4-5" in text and "sk-ant-123456789" not in text


def test_runtime_and_worker_settings_stay_on_loopback(tmp_path: Path) -> None:
    stack = _stack(tmp_path, {})
    env, worker = stack.runtime_env(), stack.worker_vars()
    assert env["MOLT_CDP_UPSTREAM"] == "ws://127.0.0.1:8787/cdp"
    assert env["MOLT_PUBLIC_ORIGIN"] == "http://127.0.0.1:8787"
    assert worker["MOLT_LOCAL_BACKEND"] == "1"
    for name in ("LOCAL_GATEWAY_URL", "LOCAL_CONTROL_URL", "LOCAL_CDP_URL"):
        assert worker[name].startswith("http://127.0.0.1:")
    # The Worker needs no gateway token or snapshot key; it never gets them.
    assert "OPENCLAW_GATEWAY_TOKEN" not in worker and "MOLT_SNAPSHOT_KEY" not in worker


def test_runtime_only_mode_skips_the_worker_and_says_where_the_gateway_is(
    tmp_path: Path,
) -> None:
    stack = _stack(tmp_path, {}, runtime_only=True)
    stack.chromium_ws = "ws://127.0.0.1:40004/devtools/browser/abc"
    env = stack.runtime_env()
    # No Worker: the bridge goes straight to Chromium, browsers straight to the gateway.
    assert env["MOLT_CDP_UPSTREAM"] == stack.chromium_ws
    assert "MOLT_PUBLIC_ORIGIN" not in env
    text = summary(stack, show_secrets=False)
    assert f"{stack.gateway_url}/" in text and "Admin UI" not in text
    assert "no Worker" in text


def test_launcher_modes_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        launcher_main(["--containers", "--runtime-only"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_local_modes_share_one_store_and_one_credentials_file() -> None:
    from devstack import __main__ as launcher

    assert Path(__file__).resolve().parents[2] / "state" / "snapshots" == launcher.STORE_DIR
    assert launcher.SECRETS_FILE == RUNTIME_SECRETS_FILE
