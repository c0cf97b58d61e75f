"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the LLM tests.

Each request is answered by a script: a function of the request's JSON body and its arrival
number that returns a `Reply` (status, text, token counts, delay). The server records every
request and the largest number it was answering at once. Token counts are a function of the
request and reply text only, so a retried request costs the same as its first try.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WINDOW = re.compile(r"^WINDOW = .*$", re.M)
HEADROOM = re.compile(r"^HEADROOM = .*$", re.M)
MARGIN = re.compile(r"^MARGIN = .*$", re.M)
PARENT = re.compile(r"## Current program.*?```python\n(.*?)```", re.S)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    text: str = ""
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    number: int
    model: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    authorization: str


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # many proposals connect at once
    daemon_threads = True


Script = Callable[[dict[str, Any], int], Reply]


def tokens(body: dict[str, Any], text: str) -> tuple[int, int]:
    chars = sum(len(m["content"]) for m in body["messages"])
    return 1 + chars // 4, 1 + len(text) // 4


class FakeOpenAI:
    """Start with `serve(script)`; `url` is the api_base to configure."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.max_concurrent = 0
        self._active = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # else 40 ms stalls per call on loopback
            # Keep-alive, as real endpoints do: a client reuses its connections instead of
            # opening one per call (which would add a connect to every call measured here).
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake._answer(self, body)

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            number = len(self.seen)
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
            self.seen.append(Seen(number, body["model"], 0, 0, 0, ""))
        active = True
        try:
            reply = self.script(body, number)
            time.sleep(reply.delay_s)
            prompt, completion = tokens(body, reply.text)
            auth = handler.headers.get("Authorization", "")
            payload = _payload(body, reply, prompt, completion, auth)
            with self._lock:
                self.seen[number] = Seen(number, body["model"], reply.status,
                                         prompt if reply.status == 200 else 0,
                                         completion if reply.status == 200 else 0, auth)
                # No longer in flight once the answer goes out: the client may send its
                # next request as soon as it has read it, before this thread runs on.
                self._active -= 1
                active = False
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
        finally:
            if active:
                with self._lock:
                    self._active -= 1

    def ok(self) -> list[Seen]:
        return [s for s in self.seen if s.status == 200]

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def _payload(body: dict[str, Any], reply: Reply, prompt: int, completion: int,
             auth: str) -> bytes:
    if reply.status != 200:
        # Like real providers, echo the key in the message: adrs must not store it.
        message = f"status {reply.status}; Incorrect API key provided: {auth[7:]}"
        return json.dumps({"error": {"message": message, "type": "error",
                                     "code": str(reply.status)}}).encode()
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": reply.text}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion}}).encode()


# ----------------------------------------------------------------- scripted edits of toy


def digest(body: dict[str, Any]) -> int:
    text = json.dumps(body["messages"])
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def parent_code(body: dict[str, Any]) -> str:
    user = body["messages"][1]["content"]
    match = PARENT.search(user)
    return match.group(1) if match else ""


def constant_edits(code: str, h: int) -> str:
    """SEARCH/REPLACE blocks moving the toy's WINDOW, HEADROOM and MARGIN lines of `code`
    to values drawn from `h` (a line already at its value gets no block)."""
    blocks = []
    for pattern, new in ((WINDOW, f"WINDOW = {1 + h % 6}"),
                         (HEADROOM, f"HEADROOM = {1.0 + (h >> 4) % 40 / 100:.2f}"),
                         (MARGIN, f"MARGIN = {float((h >> 10) % 12)}")):
        match = pattern.search(code)
        if match and match.group(0) != new:
            blocks.append(f"<<<<<<< SEARCH\n{match.group(0)}\n=======\n{new}\n"
                          ">>>>>>> REPLACE\n")
    return "".join(blocks)


def good_diff(body: dict[str, Any]) -> str:
    """A SEARCH/REPLACE edit of the parent's WINDOW, HEADROOM and MARGIN lines."""
    return "The headroom is too small for bursts.\n\n" + constant_edits(parent_code(body),
                                                                          digest(body))


def good_rewrite(body: dict[str, Any]) -> str:
    h = digest(body)
    return ("Here is the whole block.\n\n```python\n"
            f"WINDOW = {2 + h % 5}\nHEADROOM = {1.05 + (h >> 5) % 30 / 100:.2f}\n"
            f"MARGIN = {float((h >> 11) % 10)}\n\n\n"
            "def provision(history: list[float]) -> float:\n"
            '    """Return the capacity (requests per tick) to provision for the next tick."""\n'
            "    if not history:\n        return 10.0\n"
            "    recent = history[-WINDOW:]\n"
            "    level = max(recent)\n"
            "    return level * HEADROOM + MARGIN\n```\n")


MALFORMED = "I would raise the headroom a little, but I will not show code."


def is_repair(body: dict[str, Any]) -> bool:
    return len(body["messages"]) > 2
