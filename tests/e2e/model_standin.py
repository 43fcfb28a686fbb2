"""A stand-in for the model provider, served by aiohttp on 127.0.0.1 in a thread of the test.

It speaks both wire formats the runtime configures OpenClaw with for MODEL_BASE_URL: Anthropic
Messages (`POST {base}/v1/messages`, provider `anthropic`, `api: anthropic-messages`) and OpenAI
chat completions (`POST {base}/chat/completions`, provider `openai`, `api: openai-completions`),
each streaming (SSE) and not. The provider is the only external
service of the system, so it is the only thing the end-to-end tests replace.

Replies are deterministic: `STANDIN says: heard <markers>`, naming every `MARK-<letters/digits>`
token in the last user message (OpenClaw wraps the person's words in context blocks, so the
stand-in looks for the marker rather than echoing the whole text). A test can thus tell the reply
to its own message from anything else; every request is recorded (API, path, model, streaming).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REPLY_PREFIX = "STANDIN says: heard "
MARKER_RE = re.compile(r"\bMARK-[A-Za-z0-9]+\b")
API_KEY = "sk-ant-standin-0123456789abcdef"  # a test value the stand-in checks


@dataclass
class Seen:
    api: str
    path: str
    model: str | None
    stream: bool
    last_user_text: str


@dataclass
class ModelStandIn:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ModelStandIn:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="model-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the model stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/chat/completions", self._chat_completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return web.json_response(
            {"type": "error", "error": {"type": "not_found_error", "message": request.path}},
            status=404,
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if API_KEY not in (request.headers.get("x-api-key"), _bearer(request)):
            return web.json_response(
                {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
                status=401,
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"type": "error", "error": {"type": "invalid_request_error"}}, status=400
            )
        text = _last_user_text(body.get("messages"))
        stream = body.get("stream") is True
        self.requests.append(Seen("anthropic", request.path, body.get("model"), stream, text))
        reply = _reply(text)
        model = str(body.get("model") or "standin")
        if not stream:
            return web.json_response(_message(model, reply))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event, data in _stream_events(model, reply):
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response(
                {"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "not JSON"}}, status=400)
        text = _last_user_text(body.get("messages"))
        stream = body.get("stream") is True
        self.requests.append(Seen("openai", request.path, body.get("model"), stream, text))
        reply = _reply(text)
        model = str(body.get("model") or "standin")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not stream:
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        chunks = [chunk({"role": "assistant", "content": ""}, None)]
        chunks += [chunk({"content": piece}, None) for piece in _pieces(reply)]
        chunks.append(chunk({}, "stop"))
        if isinstance(body.get("stream_options"), dict):
            chunks.append({**chunk({}, None), "choices": [], "usage": usage})
        for data in chunks:
            await response.write(f"data: {json.dumps(data)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _reply(text: str) -> str:
    markers = list(dict.fromkeys(MARKER_RE.findall(text)))
    return REPLY_PREFIX + (" ".join(markers) if markers else "nothing marked")


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _last_user_text(messages: Any) -> str:
    """The text of the user turn being answered: every user message after the last reply."""
    if not isinstance(messages, list):
        return ""
    texts: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            break
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            ]
    return "\n".join(reversed(texts))


def _message(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": len(text.split())},
    }


def _stream_events(model: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    start = _message(model, "")
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = {"input_tokens": 10, "output_tokens": 1}
    chunks = _pieces(text)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}},
        )
        for c in chunks
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(chunks)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
