"""The stand-in for the egress sidecar workerd starts next to every container in `wrangler dev`.

workerd (miniflare's container support) starts one sidecar per container from
`MINIFLARE_CONTAINER_EGRESS_IMAGE`, gives it the flags below, publishes its ingress port and lets
the app container join its network namespace. It then talks to the ingress only:

- `PUT /egress` with `{port, dns: {allowHostnames}, internet: {enabled}}`: where workerd's own
  egress listener is. Answered 200 once the JSON has that shape; it is also workerd's readiness
  probe for the sidecar.
- `GET /ca`: the PEM certificate the container is told to trust for intercepted TLS. This
  stand-in intercepts nothing, so it answers with a certificate whose private key was thrown
  away the moment it was made: trusting it grants nobody anything.
- `CONNECT` with `X-Dst-Addr: 127.0.0.1:<port>`: a byte stream to a container port (the
  namespace is shared, so that is the app's loopback). 200 and then both directions relayed,
  or 400 while nothing listens there, which workerd reads as "not ready yet".

The Worker declares no outbound handlers, so the container's own egress needs no interception.
What this stand-in adds are relays for services that live on the host's loopback, which the
container cannot reach (its loopback is this namespace): `MOLT_EGRESS_RELAYS` lists
`<listen>=<target>` pairs, e.g. `127.0.0.1:9000=10.88.0.1:41231`, and each listen address gets a
plain TCP relay to its target. The same program relays on the host side too (`relay`
subcommand), from the container bridge's gateway address to the service on 127.0.0.1.

Standard library only: it runs on the bare base image. SIGTERM (or SIGINT) closes every
listener and connection and exits 0.

    python3 sidecar.py --http-egress-port 41000 --http-ingress-address 0.0.0.0:39001 ...
    python3 sidecar.py relay 10.88.0.1:41231=127.0.0.1:9000 [...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("egress")

RELAYS_VAR = "MOLT_EGRESS_RELAYS"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
PIPE_CHUNK = 64 * 1024
# Linux: bind an address that is not (yet) on any interface. The container bridge's gateway
# address exists only while a container is attached to the bridge, and the host-side relay
# starts before the first container does.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class UsageError(Exception):
    """A bad flag or relay table: one sentence naming it and the fix."""


# ---------------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Address:
        host, sep, port = text.strip().rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            number = 0
        if not sep or not 1 <= number <= 65535:
            raise UsageError(f"{what} {text!r} is not <IP>:<port> (e.g. 127.0.0.1:9000)")
        return cls(host, number)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Relay:
    listen: Address
    target: Address


def parse_relays(items: list[str]) -> list[Relay]:
    relays = []
    for item in items:
        listen, sep, target = item.partition("=")
        if not sep:
            raise UsageError(f"relay {item!r} is not <listen IP:port>=<target IP:port>")
        relays.append(Relay(Address.parse(listen, "relay listen"), Address.parse(target, "target")))
    ports = [(r.listen.host, r.listen.port) for r in relays]
    if len(set(ports)) != len(ports):
        raise UsageError("two relays listen on the same address; give each its own port")
    return relays


def relays_from_env(environ: dict[str, str]) -> list[Relay]:
    raw = environ.get(RELAYS_VAR, "").strip()
    return parse_relays([part for part in raw.split(",") if part.strip()]) if raw else []


# ------------------------------------------------------------------------------- byte streams


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close, so the other direction can still finish."""
    try:
        while chunk := await reader.read(PIPE_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(pipe(a[0], b[1]), pipe(b[0], a[1]))
    finally:
        for writer in (a[1], b[1]):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def open_target(target: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT_S
    )


# ------------------------------------------------------------------------------------ ingress


@dataclass
class EgressConfig:
    """What workerd last sent in `PUT /egress` (kept for the log; nothing is intercepted)."""

    port: int | None = None
    allow_hostnames: list[str] = field(default_factory=list)
    internet: bool | None = None


def parse_egress(body: bytes) -> EgressConfig:
    try:
        data = json.loads(body)
    except ValueError:
        raise UsageError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the body is not a JSON object")
    port = data.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError("`port` must be a TCP port number")
    dns = data.get("dns", {})
    hostnames = dns.get("allowHostnames", []) if isinstance(dns, dict) else None
    if not isinstance(hostnames, list) or not all(isinstance(h, str) for h in hostnames):
        raise UsageError("`dns.allowHostnames` must be a list of host names")
    internet = data.get("internet", {})
    enabled = internet.get("enabled") if isinstance(internet, dict) else "bad"
    if enabled is not None and not isinstance(enabled, bool):
        raise UsageError("`internet.enabled` must be true or false")
    return EgressConfig(port=port, allow_hostnames=hostnames, internet=enabled)


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]


class BadRequest(Exception):
    pass


async def read_head(reader: asyncio.StreamReader) -> Request | None:
    """One request line and its headers, or None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("the request ended inside its headers") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("the request headers are too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("the request line is not HTTP/1.x")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("a header line has no colon")
        headers[name.strip().lower()] = value.strip()
    return Request(parts[0].upper(), parts[1], headers)


def response(status: int, reason: str, body: bytes = b"", content_type: str = "") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def json_response(status: int, reason: str, value: object) -> bytes:
    return response(status, reason, json.dumps(value).encode(), "application/json")


def throwaway_ca() -> bytes:
    """A self-signed CA certificate whose private key never leaves a temp dir that is deleted."""
    with tempfile.TemporaryDirectory(prefix="egress-ca-") as tmp:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        # openssl from PATH: the image's own (it comes with ca-certificates), or the host's.
        openssl = shutil.which("openssl")
        if openssl is None:
            raise UsageError("openssl is not on PATH; install it (Debian: openssl)")
        subprocess.run(  # noqa: S603 - fixed argument list
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=moltworker local egress stand-in (no interception)",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
            check=True,
            capture_output=True,
        )
        return cert.read_bytes()


class Ingress:
    """The sidecar's control port, the only thing workerd talks to."""

    def __init__(self, ca_pem: bytes) -> None:
        self.ca_pem = ca_pem
        self.egress = EgressConfig()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await read_head(reader)
                except BadRequest as exc:
                    writer.write(json_response(400, "Bad Request", {"error": str(exc)}))
                    break
                if request is None:
                    break
                if request.method == "CONNECT":
                    await self.connect(request, reader, writer)
                    return  # the connection now belongs to the tunnel (or is closed)
                writer.write(await self.answer(request, reader))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, OSError):
            pass
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()

    async def answer(self, request: Request, reader: asyncio.StreamReader) -> bytes:
        body = b""
        if "transfer-encoding" in request.headers:
            return json_response(411, "Length Required", {"error": "send a Content-Length body"})
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return json_response(413, "Content Too Large", {"error": "body too large"})
        if int(length):
            body = await reader.readexactly(int(length))
        path = request.target.split("?", 1)[0]
        if path == "/egress" and request.method == "PUT":
            try:
                self.egress = parse_egress(body)
            except UsageError as exc:
                return json_response(400, "Bad Request", {"error": f"PUT /egress: {exc}"})
            log.info(
                "egress config: workerd egress port %d, internet %s, %d allowed host names",
                self.egress.port,
                self.egress.internet,
                len(self.egress.allow_hostnames),
            )
            return json_response(200, "OK", {"ok": True})
        if path == "/ca" and request.method == "GET":
            return response(200, "OK", self.ca_pem, "application/x-pem-file")
        if path in ("/egress", "/ca"):
            return json_response(405, "Method Not Allowed", {"error": f"{request.method} {path}"})
        return json_response(404, "Not Found", {"error": f"no such endpoint: {path}"})

    async def connect(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        raw = request.headers.get("x-dst-addr") or request.target
        try:
            dst = Address.parse(raw, "X-Dst-Addr")
            if not ipaddress.ip_address(dst.host).is_loopback:
                raise UsageError(f"X-Dst-Addr {raw!r} is not a container port on loopback")
        except UsageError as exc:
            writer.write(json_response(403, "Forbidden", {"error": str(exc)}))
            await writer.drain()
            writer.close()
            return
        try:
            upstream = await open_target(dst)
        except (OSError, TimeoutError):
            # workerd reads 400 as "the container does not listen on that port yet".
            writer.write(json_response(400, "Bad Request", {"error": f"nothing listens on {dst}"}))
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        # Bytes the client sent right after the CONNECT head are in `reader` already.
        await splice((reader, writer), upstream)


# --------------------------------------------------------------------------------------- relay

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def relay_handler(target: Address) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await open_target(target)
        except (OSError, TimeoutError) as exc:
            log.warning("relay to %s failed: %s", target, exc)
            writer.close()
            return
        await splice((reader, writer), upstream)

    return handle


def listening_socket(address: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {address}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


# ---------------------------------------------------------------------------------------- main


def tracked(handler: Handler, connections: set[asyncio.Task]) -> Handler:
    """`handler`, with its task in `connections` while it runs, so a stop can cancel it."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await handler(reader, writer)
        finally:
            connections.discard(task)

    return run


async def serve(ingress: Address | None, relays: list[Relay], ca_pem: bytes) -> None:
    servers: list[asyncio.Server] = []
    connections: set[asyncio.Task] = set()
    try:
        if ingress is not None:
            handler = tracked(Ingress(ca_pem).handle, connections)
            servers.append(await asyncio.start_server(handler, sock=listening_socket(ingress)))
            log.info("ingress on %s", ingress)
        for relay in relays:
            handler = tracked(relay_handler(relay.target), connections)
            servers.append(await asyncio.start_server(handler, sock=listening_socket(relay.listen)))
            log.info("relay %s -> %s", relay.listen, relay.target)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Explicit handlers: as a container's PID 1 the defaults would ignore these signals.
            loop.add_signal_handler(signum, stop.set)
        print("egress: ready", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        for server in servers:
            server.close()
        for task in list(connections):
            task.cancel()
        if connections:
            await asyncio.wait(connections, timeout=2)


def parse_args(argv: list[str]) -> tuple[Address | None, list[Relay]]:
    if argv[:1] == ["relay"]:
        if len(argv) < 2:
            raise UsageError("`relay` needs at least one <listen IP:port>=<target IP:port>")
        return None, parse_relays(argv[1:])
    parser = argparse.ArgumentParser(prog="sidecar.py", add_help=True)
    # The flags workerd passes to its sidecar; only the ingress address matters to a stand-in
    # that intercepts nothing, and the others are accepted so a changed set is noticed here.
    parser.add_argument("--http-ingress-address", default="0.0.0.0:39001")
    parser.add_argument("--http-egress-port", type=int)
    parser.add_argument("--docker-gateway-cidr")
    parser.add_argument("--dns-enabled", action="store_true")
    parser.add_argument("--tls-intercept", action="store_true")
    parser.add_argument("--disable-ipv6", action="store_true")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UsageError(
            f"unknown flags {' '.join(unknown)}: workerd's sidecar contract changed; "
            "compare it with devstack/egress/sidecar.py's docstring"
        )
    return Address.parse(args.http_ingress_address, "--http-ingress-address"), relays_from_env(
        dict(os.environ)
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="egress %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        ingress, relays = parse_args(sys.argv[1:] if argv is None else argv)
        ca_pem = throwaway_ca() if ingress else b""
        asyncio.run(serve(ingress, relays, ca_pem))
    except UsageError as exc:
        print(f"egress: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"egress: openssl failed to make the CA certificate: {exc.stderr!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
