"""The launcher's own logic, without starting anything: credentials files, ports, the summary."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devstack import Stack, StackConfig
from devstack.__main__ import summary
from devstack.procs import free_ports
from devstack.secrets import SecretsError, admin_token, fresh_secrets, local_secrets
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


def test_local_secrets_come_from_the_runtime_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devstack.secrets as module

    runtime = {
        "OPENCLAW_GATEWAY_TOKEN": "g" * 43,
        "MOLT_CONTROL_SECRET": "c" * 64,
        "MOLT_CDP_SECRET": "d" * 43,
        "MOLT_SNAPSHOT_KEY": "k" * 44,
    }

    class Launcher:
        @staticmethod
        def local_secrets() -> dict[str, str]:
            return dict(runtime)

    monkeypatch.setattr(module, "runtime_launcher", lambda: Launcher)
    monkeypatch.setattr(module, "ADMIN_TOKEN_FILE", tmp_path / "admin-token")
    values = local_secrets()
    assert {k: values[k] for k in runtime} == runtime
    assert values["LOCAL_ADMIN_TOKEN"] == (tmp_path / "admin-token").read_text().strip()

    del runtime["MOLT_SNAPSHOT_KEY"]
    with pytest.raises(SecretsError, match="MOLT_SNAPSHOT_KEY"):
        local_secrets()


def test_fresh_secrets_are_fresh() -> None:
    a, b = fresh_secrets(), fresh_secrets()
    assert set(a) == set(b)
    assert all(a[name] != b[name] for name in a)


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20


def _stack(tmp_path: Path, model_env: dict[str, str]) -> Stack:
    stack = Stack(StackConfig(home=tmp_path, secrets=fresh_secrets(), model_env=model_env))
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
