"""devstack/docker_api.py, the real process between workerd and a stand-in podman API socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

PROXY = Path(__file__).resolve().parents[2] / "devstack" / "docker_api.py"
NAME_CLASH = (
    b'{"cause":"that name is already in use","message":"container create: the container name'
    b' \\"workerd-x\\" is already in use","response":500}'
)


@contextmanager
def fake_podman(path: Path, answers: dict[bytes, tuple[int, bytes]]) -> Iterator[list[bytes]]:
    """A unix-socket HTTP server answering by request line prefix; records raw requests."""
    seen: list[bytes] = []
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(h.split(b":")[1])
                        for h in head.lower().split(b"\r\n")
                        if h.startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                seen.append(head + b"\r\n\r\n" + body)
                status, payload = next(
                    (v for k, v in answers.items() if head.startswith(k)), (404, b"{}")
                )
                conn.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        server.close()


@contextmanager
def proxy(listen: Path, upstream: Path) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), str(listen), str(upstream)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "docker_api: ready"
        yield
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def request(path: Path, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            if head and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    return int(head.split()[1]), rest[:length]
            if not chunk:
                break
    raise AssertionError(f"no complete answer: {data!r}")


def test_name_clash_becomes_409_and_the_restart_policy_no(tmp_path: Path) -> None:
    create = {
        "Image": "x",
        "HostConfig": {"RestartPolicy": {"Name": "on-failure"}, "NetworkMode": "container:y"},
    }
    answers = {b"POST /containers/create": (500, NAME_CLASH)}
    with (
        fake_podman(tmp_path / "podman.sock", answers) as seen,
        proxy(tmp_path / "api.sock", tmp_path / "podman.sock"),
    ):
        status, body = request(
            tmp_path / "api.sock",
            "POST",
            "/containers/create?name=workerd-x",
            json.dumps(create).encode(),
        )
        assert status == 409
        assert b"already in use" in body
        sent = json.loads(seen[0].partition(b"\r\n\r\n")[2])
        assert sent["HostConfig"] == {"RestartPolicy": {"Name": "no"}, "NetworkMode": "container:y"}


def test_other_answers_and_requests_pass_unchanged(tmp_path: Path) -> None:
    answers = {
        b"POST /v1.41/containers/create": (500, b'{"message":"no such image"}'),
        b"GET /_ping": (200, b"OK"),
        b"DELETE /containers/": (204, b""),
    }
    with (
        fake_podman(tmp_path / "podman.sock", answers) as seen,
        proxy(tmp_path / "api.sock", tmp_path / "podman.sock"),
    ):
        api = tmp_path / "api.sock"
        assert request(api, "POST", "/v1.41/containers/create", b"{}") == (
            500,
            b'{"message":"no such image"}',
        )
        assert request(api, "GET", "/_ping") == (200, b"OK")
        assert request(api, "DELETE", "/containers/x?force=true")[0] == 204
        assert seen[2].startswith(b"DELETE /containers/x?force=true HTTP/1.1\r\n")
