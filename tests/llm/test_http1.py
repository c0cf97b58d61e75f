"""adrs's HTTP/1.1 client for plain-HTTP endpoints, against a raw socket server on
127.0.0.1 that answers each request with scripted bytes (bodies of every framing, kept and
closed connections, replies that are not HTTP, silence)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from adrs.config.llm import ModelConfig
from adrs.llm.client import CallSettings
from adrs.llm.failures import retryable
from adrs.llm.http1 import Http1Client, TransportError, plain_http
from adrs.llm.openai_client import OpenAIClient

Answer = Callable[[int, bytes], tuple[bytes, bool]]  # (request number, request) -> (reply, close)


class RawServer:
    """Answers each request with `answer(n, request)`; records requests and connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
                reply, close = self.answer(len(self.requests) - 1, self.requests[-1])
                conn.sendall(reply)
                if close:
                    return


@contextmanager
def raw_server(answer: Answer) -> Iterator[RawServer]:
    server = RawServer(answer)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.sock.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def posts(url: str, n: int = 1, timeout: float = 5.0) -> list[Any]:
    async def go() -> list[Any]:
        client = Http1Client(url, timeout)
        out = []
        for i in range(n):
            response = await client.post("/chat/completions", json={"i": i},
                                         headers={"Authorization": "Bearer k"})
            out.append((response.status_code, response.json()))
        await client.aclose()
        return out
    return asyncio.run(go())


def test_a_post_sends_json_and_its_headers_and_keeps_the_connection() -> None:
    with raw_server(lambda n, r: (ok(json.dumps({"n": n}).encode()), False)) as server:
        assert posts(server.url, 3) == [(200, {"n": 0}), (200, {"n": 1}), (200, {"n": 2})]
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert "Authorization: Bearer k" in lines and json.loads(body) == {"i": 0}
    assert f"Host: {server.url.split('/')[2]}" in lines


def test_chunked_and_read_to_the_end_bodies() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\n{\"a\"\r\n3;ext=1\r\n: 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n")
    to_end = b"HTTP/1.0 200 OK\r\n\r\n{\"b\": 2}"
    with raw_server(lambda n, r: (chunked, False) if n == 0 else (to_end, True)) as server:
        assert posts(server.url, 2) == [(200, {"a": 1}), (200, {"b": 2})]
    assert server.connections == 1


def test_a_closed_connection_is_not_reused() -> None:
    with raw_server(lambda n, r: (ok(b"{}", "Connection: close\r\n"), True)) as server:
        assert posts(server.url, 2) == [(200, {}), (200, {})]
    assert server.connections == 2


def test_a_kept_connection_closed_by_the_server_is_replaced() -> None:
    """The server keeps the connection (no Connection: close) but drops it after the
    reply: the next request goes out again on a new connection, once."""
    with raw_server(lambda n, r: (ok(b"{}"), True)) as server:
        assert posts(server.url, 3) == [(200, {})] * 3
    assert server.connections == 3 and len(server.requests) == 3


def test_error_statuses_come_back_as_responses() -> None:
    reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno"

    async def go() -> tuple[int, str, str]:
        client = Http1Client(server.url, 5.0)
        response = await client.post("/x", json={}, headers={})
        return response.status_code, response.reason_phrase, response.text

    with raw_server(lambda n, r: (reply, False)) as server:
        assert asyncio.run(go()) == (503, "Service Unavailable", "no")


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH\r\n",  # not HTTP
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # closed in the body
    b"HTTP/1.1 200 OK\r\nContent-Le",  # closed in the headers
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nxx\r\n",  # negative
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70000,  # no end
    b"",  # closed before replying
])
def test_broken_replies_are_transport_errors_worth_a_retry(reply: bytes) -> None:
    with raw_server(lambda n, r: (reply, True)) as server, \
            pytest.raises(TransportError) as info:
        posts(server.url)
    assert retryable(info.value)


def test_a_silent_endpoint_times_out() -> None:
    with raw_server(lambda n, r: (b"", False)) as server, pytest.raises(TimeoutError) as info:
        posts(server.url, timeout=0.3)
    assert retryable(info.value)


def test_a_refused_connection_is_worth_a_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        posts(f"http://127.0.0.1:{port}/v1")
    assert retryable(info.value)


def test_plain_http_without_a_proxy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert plain_http("http://127.0.0.1:8000/v1") and plain_http("HTTP://h/v1")
    assert not plain_http("https://api.openai.com/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not plain_http("http://127.0.0.1:8000/v1")


def test_the_openai_client_uses_httpx_for_https_and_proxies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def made(base: str) -> str:
        client = OpenAIClient(ModelConfig("openai/m", api_base=base), CallSettings(5.0))
        return type(client._make()).__name__

    assert made("http://127.0.0.1:9/v1") == "Http1Client"
    assert made("https://api.example.com/v1") == "AsyncClient"
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert made("http://127.0.0.1:9/v1") == "AsyncClient"
