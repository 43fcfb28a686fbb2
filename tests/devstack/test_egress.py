"""The egress sidecar stand-in (devstack/egress/sidecar.py), run as the real process it is.

Each test starts the program with the flags workerd gives it and talks to its ingress the way
workerd does (container-client.c++): `PUT /egress`, `GET /ca`, `CONNECT` with `X-Dst-Addr`.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.procs import free_ports

pytestmark = pytest.mark.timeout(60)

SIDECAR = Path(__file__).resolve().parents[2] / "devstack" / "egress" / "sidecar.py"
WORKERD_FLAGS = [
    "--http-egress-port",
    "41999",
    "--docker-gateway-cidr",
    "10.88.0.0/16",
    "--dns-enabled",
    "--tls-intercept",
    "--disable-ipv6",
]


@contextmanager
def running(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [sys.executable, str(SIDECAR), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "egress: ready", (line, proc.stderr and proc.stderr.read())
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@contextmanager
def sidecar(env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, int]]:
    (port,) = free_ports(1)
    with running(["--http-ingress-address", f"127.0.0.1:{port}", *WORKERD_FLAGS], env) as proc:
        yield proc, port


@contextmanager
def echo_server() -> Iterator[int]:
    """A TCP server that answers every chunk with `echo:` + the chunk."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(b"echo:" + data)

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        thread.join(2)


def http(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def connect(port: int, dst: str, first_bytes: bytes = b"") -> tuple[int, socket.socket]:
    """A CONNECT like workerd's: the destination in X-Dst-Addr; returns (status, socket)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        f"CONNECT {dst} HTTP/1.1\r\nHost: {dst}\r\nX-Dst-Addr: {dst}\r\n\r\n".encode() + first_bytes
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return int(head.split()[1]), sock


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, f"connection ended after {data!r}"
        data += chunk
    return data


def test_put_egress_accepts_workerds_body_and_refuses_others() -> None:
    with sidecar() as (_proc, port):
        body = {"port": 41999, "dns": {"allowHostnames": ["example.com"]}, "internet": {}}
        assert http(port, "PUT", "/egress", json.dumps(body).encode())[0] == 200
        # workerd's first push (updateSidecarEgressPort) carries the port alone.
        assert http(port, "PUT", "/egress", b'{"port": 1234}')[0] == 200
        for bad, words in [
            (b"not json", "not JSON"),
            (b'{"port": 0}', "port"),
            (b'{"port": 80, "dns": {"allowHostnames": [1]}}', "allowHostnames"),
            (b'{"port": 80, "internet": {"enabled": "yes"}}', "internet.enabled"),
        ]:
            status, answer = http(port, "PUT", "/egress", bad)
            assert status == 400, bad
            assert words in json.loads(answer)["error"]
        assert http(port, "GET", "/egress")[0] == 405
        assert http(port, "GET", "/nothing")[0] == 404


def test_ca_is_a_pem_certificate() -> None:
    with sidecar() as (_proc, port):
        status, pem = http(port, "GET", "/ca")
        assert status == 200
        assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
        assert len(ssl.PEM_cert_to_DER_cert(pem.decode())) > 100


def test_connect_relays_both_ways_and_says_400_while_nothing_listens() -> None:
    (closed,) = free_ports(1)
    with sidecar() as (_proc, port), echo_server() as echo:
        status, sock = connect(port, f"127.0.0.1:{closed}")
        sock.close()
        assert status == 400  # workerd: "not listening yet", it retries
        # Bytes sent right behind the CONNECT head must not be lost.
        status, sock = connect(port, f"127.0.0.1:{echo}", b"early")
        with sock:
            assert status == 200
            assert recv_exactly(sock, len(b"echo:early")) == b"echo:early"
            sock.sendall(b"x" * 100_000)
            assert recv_exactly(sock, 5 + 100_000)[:5] == b"echo:"


def test_connect_only_reaches_loopback() -> None:
    with sidecar() as (_proc, port):
        status, sock = connect(port, "10.1.2.3:80")
        sock.close()
        assert status == 403


def test_relays_from_the_environment_and_the_relay_subcommand() -> None:
    inner, outer = free_ports(2)
    # Host side: `relay` (listen=target); container side: MOLT_EGRESS_RELAYS in the image.
    with (
        echo_server() as echo,
        running(["relay", f"127.0.0.1:{outer}=127.0.0.1:{echo}"]),
        sidecar({"MOLT_EGRESS_RELAYS": f"127.0.0.1:{inner}=127.0.0.1:{outer}"}),
        socket.create_connection(("127.0.0.1", inner), timeout=5) as sock,
    ):
        sock.sendall(b"through two relays")
        assert recv_exactly(sock, 23) == b"echo:through two relays"


def test_sigterm_with_an_open_tunnel_exits_0_at_once() -> None:
    with sidecar() as (proc, port), echo_server() as echo:
        status, sock = connect(port, f"127.0.0.1:{echo}")
        assert status == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 3
        sock.close()


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--http-ingress-address", "0.0.0.0:1", "--new-flag"], {}, "--new-flag"),
        (["--http-ingress-address", "nowhere"], {}, "--http-ingress-address"),
        (["relay", "127.0.0.1:1"], {}, "<listen IP:port>=<target IP:port>"),
        (["--http-ingress-address", "127.0.0.1:1"], {"MOLT_EGRESS_RELAYS": "a=b"}, "'a'"),
    ],
)
def test_bad_flags_exit_2_naming_the_problem(
    args: list[str], env: dict[str, str], words: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(SIDECAR), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=20,
    )
    assert result.returncode == 2
    assert words in result.stderr
