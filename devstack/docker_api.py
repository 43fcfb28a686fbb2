"""podman's Docker API for workerd, with two changes to `POST /containers/create`.

This proxy sits on its own unix socket in front of `podman system service` and passes every
request through byte for byte, except the container create:

- The answer to a name clash. workerd creates the app container under a fixed name; when one of
  that name is left (it exited), Docker answers 409 and workerd removes the old container and
  creates it again. podman 4.3 answers 500 ("that name is already in use"), which workerd
  reports as a failed start, on every later start too. That 500 becomes the 409 Docker sends.
- The restart policy. workerd asks for `on-failure`, so the engine itself restarts a container
  that exits non-zero, behind the Durable Object's back. Cloudflare never does that: a stopped
  container stays stopped until the object starts it again. The local run must show what the
  platform does (a runtime that exits 3 stays down and the Worker says why), so the policy
  becomes `no`.

workerd opens one connection per API request, so only the first request of a connection is
read; everything after it is relayed unparsed.

    python3 docker_api.py <listen.sock> <podman.sock>

Standard library only, like the other helpers wrangler's children use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
CREATE = re.compile(rb"^POST (/v[0-9.]+)?/containers/create(\?|\s)")
NAME_IN_USE = b"already in use"


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP message: its head and its body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:")), None
    )
    if length is not None:
        if length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        return head, await reader.readexactly(length)
    if any(line.startswith(b"transfer-encoding:") and b"chunked" in line for line in lines):
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head, body
            if len(body) > MAX_BODY_BYTES:
                raise ValueError("body too large")
    return head, b""


def without_restarts(head: bytes, body: bytes) -> bytes:
    """The create request with `HostConfig.RestartPolicy` set to `no` (Content-Length fixed)."""
    try:
        config = json.loads(body)
    except ValueError:
        return head + body
    if not isinstance(config, dict):
        return head + body
    host = config.setdefault("HostConfig", {})
    if not isinstance(host, dict):
        return head + body
    host["RestartPolicy"] = {"Name": "no"}
    new_body = json.dumps(config).encode()
    lines = [
        f"Content-Length: {len(new_body)}".encode()
        if line.lower().startswith(b"content-length:")
        else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + new_body


def docker_answer(head: bytes, body: bytes) -> bytes:
    """`head` with 409 in place of podman's 500 for a name that is in use."""
    status_line, rest = head.split(b"\r\n", 1)
    if b" 500 " in status_line + b" " and NAME_IN_USE in body:
        print("docker_api: name clash answered 409 (podman said 500)", flush=True)
        status_line = status_line.split(b" ", 1)[0] + b" 409 Conflict"
    return status_line + b"\r\n" + rest


class Proxy:
    def __init__(self, upstream: Path) -> None:
        self.upstream = upstream

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.upstream))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if CREATE.match(head):
                up_writer.write(without_restarts(head, await _body_of(head, reader)))
                await up_writer.drain()
                resp_head, resp_body = await read_message(up_reader)
                writer.write(docker_answer(resp_head, resp_body) + resp_body)
                await writer.drain()
            else:
                up_writer.write(head)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()


async def _body_of(head: bytes, reader: asyncio.StreamReader) -> bytes:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
            if length > MAX_BODY_BYTES:
                raise ValueError("body too large")
            return await reader.readexactly(length)
    return b""


async def serve(listen: Path, upstream: Path) -> None:
    listen.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(
        Proxy(upstream).handle, str(listen), limit=MAX_HEAD_BYTES
    )
    os.chmod(listen, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("docker_api: ready", flush=True)
    await stop.wait()
    server.close()
    listen.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: docker_api.py <listen.sock> <podman.sock>", file=sys.stderr)
        return 2
    asyncio.run(serve(Path(argv[0]), Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
