"""Configuration: the rendered OpenClaw config, and the boots that must not happen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_harness import base_env, free_port, full_env, secret, secret_values
from sandbox_runtime.openclaw_cli import OpenClawCli, openclaw_env
from sandbox_runtime.openclaw_config import render, write_config
from sandbox_runtime.settings import ConfigError, load_settings

pytestmark = pytest.mark.timeout(90)


def boot(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the runtime expecting it to refuse to boot (it must exit on its own)."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox_runtime"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return caught.value.problems


# ------------------------------------------------------------------- rendering + validation


async def test_full_env_renders_a_config_openclaw_accepts(tmp_path: Path) -> None:
    env = full_env(tmp_path)
    settings = load_settings(env)
    config = render(settings)

    providers = config["models"]["providers"]
    assert providers["anthropic"]["baseUrl"] == (
        "https://gateway.ai.cloudflare.com/v1/acct123/molt-gw/anthropic"
    )
    assert providers["openai"]["baseUrl"].endswith("/molt-gw/openai")
    # A base URL alone makes OpenClaw speak OpenAI's format; Anthropic's route needs its own.
    assert providers["anthropic"]["api"] == "anthropic-messages"
    assert providers["openai"]["api"] == "openai-completions"
    for provider in ("anthropic", "openai"):
        header = providers[provider]["headers"]["cf-aig-authorization"]
        assert header == {"source": "env", "provider": "default", "id": "MOLT_AIG_AUTHORIZATION"}
    assert providers["anthropic"]["apiKey"]["id"] == "ANTHROPIC_API_KEY"
    assert config["agents"]["defaults"]["model"] == {
        "primary": "anthropic/claude-sonnet-4-5",
        "fallbacks": ["openai/gpt-5", "anthropic/claude-haiku-4-5"],
    }
    channels = config["channels"]
    assert channels["telegram"]["dmPolicy"] == "allowlist"
    assert channels["discord"]["dmPolicy"] == "open"
    assert channels["discord"]["allowFrom"] == ["*"]
    assert channels["slack"]["appToken"]["id"] == "SLACK_APP_TOKEN"
    assert config["gateway"]["trustedProxies"] == ["10.0.0.0/8", "fd00::/8"]
    assert config["gateway"]["controlUi"]["allowedOrigins"] == ["https://molt.example.com"]
    # Browsers arrive through the Worker from a local address: pairing must still need the admin.
    assert config["gateway"]["nodes"]["pairing"]["autoApproveLocal"] is False
    profile = config["browser"]["profiles"][config["browser"]["defaultProfile"]]
    assert profile == {"cdpUrl": f"http://127.0.0.1:{env['MOLT_CDP_PORT']}", "attachOnly": True}
    # The runtime's skills are read in place, never copied into the (snapshotted) workspace.
    [skills] = config["skills"]["load"]["extraDirs"]
    assert (Path(skills) / "cloudflare-browser" / "SKILL.md").is_file()
    assert Path(settings.state_dir) not in Path(skills).parents

    path = write_config(settings, config)
    text = path.read_text()
    for value in secret_values(env):
        assert value not in text
    assert path.stat().st_mode & 0o777 == 0o600
    assert await OpenClawCli(settings).validate_config() == []

    # The gateway receives the header value with its scheme, the file only a reference to it.
    assert openclaw_env(settings)["MOLT_AIG_AUTHORIZATION"] == f"Bearer {env['AI_GATEWAY_TOKEN']}"


async def test_openclaw_validator_catches_a_broken_config(tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path))
    config = render(settings)
    config["browser"]["profiles"]["cloudflare"]["cdpUrlTypo"] = "x"
    write_config(settings, config)
    issues = await OpenClawCli(settings).validate_config()
    assert issues and "cdpUrlTypo" in issues[0]


def test_model_status_says_whether_the_primary_has_a_key(tmp_path: Path) -> None:
    full = load_settings(full_env(tmp_path)).model_status()
    assert full == {
        "primary": "anthropic/claude-sonnet-4-5",
        "fallbacks": ["openai/gpt-5", "anthropic/claude-haiku-4-5"],
        "key": True,
    }
    bare = base_env(tmp_path)
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MODEL_PRIMARY", "MODEL_FALLBACKS"):
        bare.pop(name, None)
    assert load_settings(bare).model_status() == {"primary": None, "fallbacks": [], "key": False}
    # A key for another provider does not make the primary model usable.
    other = bare | {
        "MODEL_PRIMARY": "anthropic/claude-sonnet-4-5",
        "OPENAI_API_KEY": "sk-" + "x" * 40,
    }
    assert load_settings(other).model_status()["key"] is False


# ---------------------------------------------------------------------- refusals to boot


def test_empty_env_lists_every_missing_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = boot(env, tmp_path)
    assert result.returncode == 2
    err = result.stderr
    for name in (
        "OPENCLAW_GATEWAY_TOKEN",
        "MOLT_CONTROL_SECRET",
        "MOLT_SNAPSHOT_KEY",
        "MOLT_STORE",
    ):
        assert f"configuration problem: {name} is not set" in err, err
    assert "Traceback" not in err


def test_contradictions_are_named_and_secrets_not_echoed(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    leaked = secret("xoxb")
    env.update(
        {
            "AI_GATEWAY_BASE_URL": "https://gateway.ai.cloudflare.com/v1/a/g",
            "MODEL_BASE_URL": "http://127.0.0.1:9/v1",
            "SLACK_BOT_TOKEN": leaked,
            "TELEGRAM_DM_POLICY": "everyone",
            "MOLT_TRUSTED_PROXIES": "10.0.0.1/8",
            "MOLT_BIND": "public",
            "MOLT_CONTROL_PORT": env["MOLT_GATEWAY_PORT"],
            "MODEL_PRIMARY": "claude",
        }
    )
    result = boot(env, tmp_path)
    assert result.returncode == 2
    err = result.stderr
    expected = [
        "AI_GATEWAY_BASE_URL and MODEL_BASE_URL are both set",
        "AI_GATEWAY_BASE_URL is set without AI_GATEWAY_TOKEN",
        "slack needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN together",
        "TELEGRAM_DM_POLICY='everyone' is not one of pairing, allowlist, open, disabled",
        "TELEGRAM_DM_POLICY is set but TELEGRAM_BOT_TOKEN is not",
        "MOLT_TRUSTED_PROXIES entry '10.0.0.1/8' is not a CIDR",
        "MOLT_BIND='public' is not one of loopback, lan",
        "must be three different ports",
        "MODEL_PRIMARY='claude' is not provider/model",
    ]
    for sentence in expected:
        assert sentence in err, (sentence, err)
    assert err.count("configuration problem:") == len(expected)
    for value in [*secret_values(env), leaked]:
        assert value not in result.stdout + err


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"MOLT_CONTROL_SECRET": "short-but-16chars"}, "MOLT_CONTROL_SECRET is shorter than 32"),
        ({"OPENCLAW_GATEWAY_TOKEN": "TELEGRAM_BOT_TOKEN"}, "looks like a variable name"),
        ({"OPENCLAW_GATEWAY_TOKEN": " padded-token-value-1234 "}, "whitespace"),
        ({"MOLT_CDP_UPSTREAM": "wss://user:pw@host/cdp"}, "credentials in the URL"),
        ({"MOLT_CDP_UPSTREAM": "https://host/cdp"}, "must be a ws:// or wss:// URL"),
        ({"MOLT_STATE_DIR": "/tmp/x", "MOLT_RUNTIME_DIR": "/tmp/x/run"}, "overlap"),
        ({"MODEL_FALLBACKS": "openai/gpt-5"}, "MODEL_FALLBACKS is set without MODEL_PRIMARY"),
        ({"AI_GATEWAY_TOKEN": "aig-token-123456789"}, "without AI_GATEWAY_BASE_URL"),
        ({"MOLT_SNAPSHOT_DEBOUNCE_S": "nan"}, "MOLT_SNAPSHOT_DEBOUNCE_S"),
        ({"DISCORD_DM_POLICY": "open"}, "DISCORD_DM_POLICY is set but DISCORD_BOT_TOKEN is not"),
    ],
)
def test_single_problems(tmp_path: Path, change: dict[str, str], fragment: str) -> None:
    env = base_env(tmp_path)
    env.update(change)
    found = problems(env)
    assert any(fragment in p for p in found), found


def test_wss_upstream_needs_the_cdp_secret(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    del env["MOLT_CDP_SECRET"]
    env["MOLT_CDP_UPSTREAM"] = "wss://molt.example.com/cdp"
    assert any("MOLT_CDP_SECRET is not set" in p for p in problems(env))
    env["MOLT_CDP_UPSTREAM"] = "ws://127.0.0.1:9/devtools/browser/x"
    assert load_settings(env).cdp_upstream == "ws://127.0.0.1:9/devtools/browser/x"


@pytest.mark.openclaw
def test_config_openclaw_rejects_stops_the_boot(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    # Passes the runtime's own checks; OpenClaw only allows plain http for loopback origins.
    env["MOLT_PUBLIC_ORIGIN"] = "http://molt.example.com"
    result = boot(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "OpenClaw rejected the rendered config: gateway.publicOrigin" in result.stderr
    assert "starting gateway" not in result.stderr


def test_missing_openclaw_stops_the_boot(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env["MOLT_OPENCLAW_BIN"] = str(tmp_path / "no-such-openclaw")
    result = boot(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        "boot stopped: OpenClaw's config validator did not run: cannot run "
        f"{env['MOLT_OPENCLAW_BIN']}: No such file or directory; set MOLT_OPENCLAW_BIN"
        in result.stderr
    )
    assert "starting gateway" not in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_store_stops_the_boot(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update(
        {
            "MOLT_STORE": "r2",
            "R2_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "R2_BUCKET": "molt-data",
            "R2_ACCESS_KEY_ID": secret("keyid"),
            "R2_SECRET_ACCESS_KEY": secret("s3secret"),
        }
    )
    state = Path(env["MOLT_STATE_DIR"])
    state.mkdir(parents=True)
    (state / "precious.txt").write_text("kept\n")
    result = boot(env, tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "boot stopped: the snapshot store is unreachable" in result.stderr
    assert "starting gateway" not in result.stderr
    assert (state / "precious.txt").read_text() == "kept\n"
    for value in (env["R2_ACCESS_KEY_ID"], env["R2_SECRET_ACCESS_KEY"]):
        assert value not in result.stderr


def test_rendered_config_is_json_with_only_references(tmp_path: Path) -> None:
    settings = load_settings(full_env(tmp_path))
    text = json.dumps(render(settings))
    assert '"source": "env"' in text
    for name in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "SLACK_BOT_TOKEN", "OPENAI_API_KEY"):
        assert f'"id": "{name}"' in text


def test_runtime_dir_of_another_user_stops_the_boot(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
    else:
        foreign = Path("/usr")  # root's, never the test user's
    env["MOLT_RUNTIME_DIR"] = str(foreign)
    result = boot(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "belongs to another user; point MOLT_RUNTIME_DIR" in result.stderr
    assert not (foreign / "openclaw.json").exists()
