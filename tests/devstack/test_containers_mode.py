"""The containers mode's own logic without starting it: the generated wrangler config, names,
the browser wrapper's version, and what it says when podman is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import __main__ as launcher
from devstack import containers, images
from devstack.base import WORKER_DIR
from devstack.containers import (
    containers_wrangler_config,
    cron_entry,
    miniflare_browser_version,
    strip_jsonc,
    worker_name_for,
)
from devstack.procs import free_ports

pytestmark = pytest.mark.timeout(30)


def test_strip_jsonc_keeps_strings_that_look_like_comments() -> None:
    text = '{\n  // a comment\n  "url": "https://x//y", /* block */ "n": 1\n}'
    assert json.loads(strip_jsonc(text)) == {"url": "https://x//y", "n": 1}


def test_generated_config_declares_the_container_like_the_deploy_path(tmp_path: Path) -> None:
    dockerfile = tmp_path / "image" / "Dockerfile"
    config = containers_wrangler_config(WORKER_DIR, "moltworker-abc", dockerfile, "1m")
    assert config["containers"] == [
        {
            "class_name": "Sandbox",
            "image": str(dockerfile),
            "image_build_context": str(dockerfile.parent),
            "max_instances": 1,
        }
    ]
    assert config["dev"]["enable_containers"] is True
    assert config["name"] == "moltworker-abc"
    assert config["vars"]["SLEEP_AFTER"] == "1m"
    assert "CRON_SNAPSHOT_AFTER" not in config["vars"]  # unset: the Worker's default, as deployed
    short = containers_wrangler_config(WORKER_DIR, "moltworker-abc", dockerfile, "1m", "10s")
    assert short["vars"]["CRON_SNAPSHOT_AFTER"] == "10s"
    # Same bindings as worker/wrangler.jsonc; paths absolute so the file can live outside it.
    assert config["durable_objects"]["bindings"] == [{"name": "SANDBOX", "class_name": "Sandbox"}]
    assert Path(config["main"]).is_file()
    assert Path(config["assets"]["directory"]).is_dir()
    # The checked-in config stays without containers: `make dev` and vitest need no engine.
    checked_in = json.loads(strip_jsonc((WORKER_DIR / "wrangler.jsonc").read_text()))
    assert "containers" not in checked_in
    assert checked_in["dev"]["enable_containers"] is False


def test_worker_names_are_stable_per_home_and_distinct_between_homes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert worker_name_for(a) == worker_name_for(a)
    assert worker_name_for(a) != worker_name_for(b)
    assert worker_name_for(a).startswith("moltworker-")


def test_the_browser_wrapper_matches_miniflares_chrome_version() -> None:
    version = miniflare_browser_version()
    assert version.count(".") == 3, version


def test_containers_mode_without_podman_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda _name: None)
    monkeypatch.setattr(containers, "Tools", type("T", (), {"load": staticmethod(lambda: None)}))
    (port,) = free_ports(1)
    code = launcher.main(["--containers", "--home", str(tmp_path), "--port", str(port)])
    out = capsys.readouterr().out
    assert code == 1
    assert "the containers mode needs podman" in out
    assert "bootstrap.py --containers" in out


def test_cron_lines_are_read_also_when_wrangler_colours_them() -> None:
    plain = '{"level":"info","event":"cron","route":"cron","action":"not_running"}'
    warned = (
        "\x1b[33m▲ \x1b[43;33m[\x1b[43;30mWARNING\x1b[43;33m]\x1b[0m \x1b[1m"
        '{"level":"warn","event":"cron","action":"snapshot_failed","upstream_status":502}\x1b[0m'
    )
    other = '{"level":"info","event":"request","path":"/cron"}'
    assert cron_entry(f"{other}\n{plain}\n") == json.loads(plain)
    assert cron_entry(f"[wrangler:info] GET / 200\n{warned}\n") == {
        "level": "warn",
        "event": "cron",
        "action": "snapshot_failed",
        "upstream_status": 502,
    }
    assert cron_entry(other) is None
