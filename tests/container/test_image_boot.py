"""The built sandbox image, booted with podman: real container, real OpenClaw, real stores.

The image is `container/Dockerfile` built on the Debian-made stand-in base with the deploy
path's build arguments and platform (devstack/images.py). Each test starts its own containers
and removes them, whatever happens.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from image_harness import (
    CONTROL_PORT,
    GATEWAY_PORT,
    RUNTIME_UID,
    Container,
    get_json,
    podman,
    secret_env,
    store_volume,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(600)]

NOTE = "image-test-note.txt"
# The real uid of every process in the container (the image has no procps).
PROCESS_UIDS = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    for line in open(f'/proc/{pid}/status'):\n"
    "        if line.startswith('Uid:'): print(line.split()[1])\n"
)


@contextmanager
def container(image: str, env: dict[str, str], tmp: Path, **kwargs) -> Iterator[Container]:
    box = Container(image, env, tmp, **kwargs)
    try:
        yield box.start()
    finally:
        box.remove()


def write_note(box: Container, text: str) -> None:
    # As the image's user (the exec default), like OpenClaw writing its own state.
    box.exec("python3", "-c", f"open('/data/state/{NOTE}', 'w').write({text!r})")


def read_note(box: Container) -> str:
    return box.exec("cat", f"/data/state/{NOTE}", check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_restart_on_the_same_store_restores_the_state(image: str, tmp_path: Path) -> None:
    """The case that broke: the second boot swaps a snapshot into /data/state, an image layer.

    The second container is also where the image's user, ports, HEALTHCHECK and SIGTERM are
    checked, on a runtime that has restored state (one boot fewer for the suite).
    """
    env = secret_env()
    store = store_volume(tmp_path)
    note = f"kept across restarts {secrets.token_hex(4)}"
    with container(image, env, tmp_path, store=store) as first:
        first.wait_ready()
        write_note(first, note)
        code, _ = first.stop()
        logs = first.logs()
    assert code == 0, logs[-3000:]
    assert "final snapshot" in logs, logs[-3000:]
    with container(image, env, tmp_path, store=store) as box:
        box.wait_ready()
        assert read_note(box) == note, box.logs()[-3000:]
        assert "Invalid cross-device link" not in box.logs()
        check_user_ports_and_health(image, box)
        write_note(box, note + " and again")
        # SIGTERM: the gateway stops, the final snapshot is written, exit 0 inside the grace.
        code, took = box.stop(grace=30)
        logs = box.logs()
    assert code == 0, f"exit {code} after {took:.1f}s:\n{logs[-3000:]}"
    assert re.search(r"snapshot \S+ \(shutdown\)", logs), logs[-3000:]


def check_user_ports_and_health(image: str, box: Container) -> None:
    # Through the published ports, as the Worker reaches them.
    assert get_json(f"{box.url(GATEWAY_PORT)}/readyz")[0] == 200
    status, health = get_json(f"{box.url(CONTROL_PORT)}/healthz")
    assert (status, health.get("phase")) == (200, "ready")
    # The image's own HEALTHCHECK (kept by the docker format) runs and passes.
    config = podman("image", "inspect", image, "--format", "{{json .Config.Healthcheck}}")
    assert "sandbox_runtime.healthcheck" in config.stdout
    assert podman("healthcheck", "run", box.name, check=False).returncode == 0
    # Every process of the runtime, gateway included, runs as the image's user.
    uids = box.exec("python3", "-c", PROCESS_UIDS).split()
    assert len(uids) >= 3, uids  # supervisor, gateway, and this probe at least
    assert set(uids) == {str(RUNTIME_UID)}, uids
    # Nowhere to write but the state (and its staging beside it), the runtime dir (the home),
    # the store volume this test mounts, and the base's world-writable scratch dirs.
    writable = box.exec(
        "find", "/", "-xdev", "-writable", "-not", "-type", "l", "-print", check=False
    ).split()
    allowed = re.compile(
        r"^(/data(/.*)?|/home/molt(/.*)?|/store|/tmp(/.*)?|/var/tmp|/run/lock|/dev/.*)$"
    )
    assert [p for p in writable if not allowed.match(p)] == []


def test_s3_store_from_empty_and_kill_9_loses_at_most_the_window(
    image: str, tmp_path: Path, moto_endpoint: str
) -> None:
    """First boot on an empty bucket, a change, `kill -9` once its snapshot is written, and the
    next container restores it from the bucket."""
    bucket = f"image-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="moto-key-id-0123456789",
        aws_secret_access_key="moto-secret-key-0123456789",
        # moto refuses R2's "auto" region for creation; the runtime then uses the bucket as R2.
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    env = secret_env(store="r2")
    env.update(
        {
            # Host networking: the container reaches the suite's moto server on loopback.
            "R2_ENDPOINT": moto_endpoint,
            "R2_BUCKET": bucket,
            "R2_ACCESS_KEY_ID": "moto-key-id-0123456789",
            "R2_SECRET_ACCESS_KEY": "moto-secret-key-0123456789",
            "MOLT_BIND": "loopback",
            "MOLT_GATEWAY_PORT": str(free_port()),
            "MOLT_CONTROL_PORT": str(free_port()),
            "MOLT_CDP_PORT": str(free_port()),
        }
    )
    with container(image, env, tmp_path, host_network=True) as box:
        box.wait_ready()
        assert "snapshot store is empty: first boot" in box.logs()
        before = box.logs().count("(watch)")
        write_note(box, "written before the kill")
        # The documented window: MOLT_SNAPSHOT_DEBOUNCE_S of quiet, then the snapshot itself.
        # Wait for a snapshot after the write and then for the snapshotter to stay quiet, so the
        # snapshot that holds the note has finished.
        started = time.monotonic()
        seen, stable_since = before, time.monotonic()
        while seen == before or time.monotonic() - stable_since < 3:
            assert time.monotonic() - started < 60, box.logs()[-3000:]
            count = box.logs().count("(watch)")
            if count != seen:
                seen, stable_since = count, time.monotonic()
            time.sleep(0.2)
        podman("kill", "-s", "KILL", box.name)
        assert box.wait_exit() == 137
    with container(image, env, tmp_path, host_network=True) as again:
        # Ready at all means the old container's gateway lease did not hold this one off.
        again.wait_ready()
        assert read_note(again) == "written before the kill"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"MOLT_SNAPSHOT_KEY": None}, "MOLT_SNAPSHOT_KEY"),
        ({"MOLT_STORE": "floppy"}, "MOLT_STORE='floppy' is not a store kind"),
    ],
)
def test_a_bad_variable_exits_2_naming_it(
    image: str, tmp_path: Path, change: dict[str, str | None], problem: str
) -> None:
    env = secret_env()
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    with container(image, env, tmp_path, store=store_volume(tmp_path)) as box:
        assert box.wait_exit() == 2
        logs = box.logs()
    lines = [line for line in logs.splitlines() if "configuration problem:" in line]
    assert any(problem in line for line in lines), logs[-3000:]
    for value in env.values():
        if len(value) > 20:
            assert value not in logs


def test_an_unreachable_store_exits_3_and_starts_nothing(image: str, tmp_path: Path) -> None:
    env = secret_env(store="r2")
    env.update(
        {
            "R2_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "R2_BUCKET": "unreachable-bucket",
            "R2_ACCESS_KEY_ID": "key-id-0123456789",
            "R2_SECRET_ACCESS_KEY": "secret-0123456789abcdef",
            "MOLT_BIND": "loopback",
            "MOLT_GATEWAY_PORT": str(free_port()),
            "MOLT_CONTROL_PORT": str(free_port()),
            "MOLT_CDP_PORT": str(free_port()),
        }
    )
    with container(image, env, tmp_path, host_network=True) as box:
        assert box.wait_exit(timeout=120) == 3
        logs = box.logs()
    assert "gateway (pid" not in logs, logs[-3000:]
    assert "secret-0123456789abcdef" not in logs
