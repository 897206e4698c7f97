"""A real HTTP server on 127.0.0.1 that speaks just enough of the chat-completions protocol.

It serves ``POST /openai/v1/chat/completions`` (Groq's layout) and ``POST /v1/chat/completions``
(the OpenAI layout). Each request is recorded; the reply comes from a queue of scripted replies
(``push``), else from ``default`` — by default a reply whose pairs are built from the chunk's own
first sentences, so they pass the grounding check.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK_RE = re.compile(r"<text>\n(.*)\n</text>", re.S)


@dataclass
class Reply:
    """One scripted answer: a status, a body (dict → JSON), headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    t: float

    @property
    def chunk(self) -> str:
        """The chunk text inside the user prompt."""
        user = next(m["content"] for m in self.body["messages"] if m["role"] == "user")
        match = CHUNK_RE.search(user)
        return match.group(1) if match else user


def completion(content: str) -> dict[str, Any]:
    """A chat-completions response body whose assistant message is ``content``."""
    return {"id": "chatcmpl-stub", "object": "chat.completion", "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def pairs_reply(pairs: list[tuple[str, str]]) -> Reply:
    """A 200 reply holding ``{"pairs": [...]}``."""
    return Reply(body=completion(json.dumps({"pairs": [{"question": q, "answer": a} for q, a in pairs]})))


def grounded_reply(request: Received) -> Reply:
    """Pairs made of the chunk's own sentences: one per sentence, questions named after the chunk."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", request.chunk) if s.strip()]
    pairs = [(f"What does part {i} of {request.chunk[:30]!r} say?", s) for i, s in enumerate(sentences[:3])]
    return pairs_reply(pairs)


class StubServer:
    """``with StubServer() as server:`` — ``server.base_url`` is the root to give as GROQ_BASE_URL."""

    def __init__(self, default: Callable[[Received], Reply] = grounded_reply) -> None:
        self.default = default
        self.script: deque[Reply | Callable[[Received], Reply]] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path not in ("/openai/v1/chat/completions", "/v1/chat/completions"):
                    self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                    return
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   json.loads(raw or b"{}"), time.monotonic())
                with stub._lock:
                    stub.requests.append(request)
                    scripted = stub.script.popleft() if stub.script else stub.default
                reply = scripted(request) if callable(scripted) else scripted
                if reply.delay:
                    time.sleep(reply.delay)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                body = reply.body
                data = body if isinstance(body, bytes) else (
                    body.encode() if isinstance(body, str) else json.dumps(body or {}).encode())
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test): nothing to tell it

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server's root)."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def push(self, *replies: Reply | Callable[[Received], Reply]) -> None:
        """Queue replies for the next requests, in order; then ``default`` answers."""
        with self._lock:
            self.script.extend(replies)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
