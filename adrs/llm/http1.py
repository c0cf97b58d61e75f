"""A small HTTP/1.1 client on asyncio streams: JSON POSTs to plain-HTTP endpoints.

The openai client (adrs/llm/openai_client.py) sends each call as one POST of JSON and
reads one JSON reply. Over plain HTTP with no proxy (a local vLLM, SGLang, llama.cpp or
Ollama server, the benchmarks' loopback server) that needs none of httpx: this client
imports nothing beyond asyncio and json, where httpx takes tens of milliseconds to import
at the start of a run and about half a millisecond of CPU per call
(benchmarks/llm_client_cpu.py). HTTPS and proxies stay on httpx (`plain_http`).

Scope: `post(path, json=..., headers=...)` returns a `Response` (status code, reason,
body, `json()`, `text`), as httpx's does for the uses here. Connections are kept alive
and reused (per client, hence per event loop), with TCP_NODELAY; a body comes with a
Content-Length, chunked, or up to the end of the connection, at most MAX_BODY_BYTES. A
timeout bounds each whole exchange, connecting included, and raises TimeoutError. A
refused or dropped connection raises an OSError (ConnectionRefusedError, socket.gaierror,
`TransportError` for a connection closed mid-reply or a reply that is not HTTP); a kept
connection that the server closed meanwhile is replaced once, before any byte of the
reply is read. Redirects are not followed (httpx's default).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from adrs import __version__

MAX_BODY_BYTES = 64 << 20  # a chat completion is kilobytes; refuse a runaway reply
MAX_HEAD_BYTES = 64 << 10  # status line and headers
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TransportError(ConnectionError):
    """The connection was dropped mid-reply, or the reply is not HTTP/1.x."""


def plain_http(base_url: str) -> bool:
    """Whether this client serves `base_url`: plain HTTP, and no proxy variable set
    (httpx honours those; NO_PROXY lists are not worth reimplementing here)."""
    return base_url.lower().startswith("http://") and not any(
        os.environ.get(name) for name in _PROXY_VARIABLES)


@dataclass(frozen=True)
class Response:
    status_code: int
    reason_phrase: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return jsonlib.loads(self.content)


class Http1Client:
    """JSON POSTs to one plain-HTTP base URL, with kept-alive connections."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise ValueError(f"not a plain-HTTP URL: {base_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._authority = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._idle: list[_Streams] = []

    async def post(self, path: str, *, json: Any, headers: dict[str, str]) -> Response:
        body = jsonlib.dumps(json).encode()
        head = [f"POST {self._prefix}{path} HTTP/1.1", f"Host: {self._authority}",
                f"User-Agent: adrs/{__version__}", "Accept: application/json",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self._timeout):
            return await self._exchange(request)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()

    async def _exchange(self, request: bytes) -> Response:
        while self._idle:  # a kept connection the server may have closed meanwhile
            streams = self._idle.pop()
            try:
                return await self._on(streams, request, kept=True)
            except _Stale:
                continue
        return await self._on(await self._connect(), request, kept=False)

    async def _connect(self) -> _Streams:
        reader, writer = await asyncio.open_connection(self._host, self._port,
                                                       limit=MAX_HEAD_BYTES)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def _on(self, streams: _Streams, request: bytes, *, kept: bool) -> Response:
        """The exchange on one connection, kept for the next one when the reply allows."""
        reader, writer = streams
        try:
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            except ConnectionError:
                if kept:
                    raise _Stale from None
                raise
            except ValueError:  # longer than the reader's limit
                raise TransportError("the reply's status line is too long") from None
            if not status_line:
                if kept:
                    raise _Stale
                raise TransportError("the endpoint closed the connection before replying")
            response, keep = await _read_reply(reader, status_line)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append(streams)
        else:
            writer.close()
        return response


class _Stale(Exception):
    """A kept connection was closed by the server before it answered: use another."""


async def _read_reply(reader: asyncio.StreamReader,
                      status_line: bytes) -> tuple[Response, bool]:
    """The reply after its status line, and whether the connection can be kept."""
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not status_line.endswith(b"\n") or not version.startswith("HTTP/1.") \
            or not code.isdigit():
        raise TransportError(f"the endpoint's reply is not HTTP: {status_line[:80]!r}")
    headers = await _read_headers(reader)
    body, to_end = await _read_body(reader, headers)
    keep = (not to_end and version == "HTTP/1.1"
            and headers.get("connection", "").lower() != "close")
    return Response(int(code), reason, body), keep


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """The header lines up to the empty one, names in lower case."""
    headers: dict[str, str] = {}
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # one line over the reader's limit
            raise TransportError("the reply's headers are too long") from None
        size += len(line)
        if not line.endswith(b"\n"):
            raise TransportError("the connection closed in the reply's headers")
        if line in (b"\r\n", b"\n"):
            return headers
        if size > MAX_HEAD_BYTES:
            raise TransportError("the reply's headers are too long")
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()


async def _read_body(reader: asyncio.StreamReader,
                     headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body, and whether it was read to the end of the connection."""
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await _read_chunks(reader), False
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise TransportError(f"the reply's Content-Length is {length[:40]!r}")
            return await reader.readexactly(int(length)), False
        body = bytearray()
        while len(body) <= MAX_BODY_BYTES:
            more = await reader.read(MAX_BODY_BYTES + 1 - len(body))
            if not more:
                return bytes(body), True
            body += more
    except asyncio.IncompleteReadError:
        raise TransportError("the connection closed in the reply's body") from None
    except asyncio.LimitOverrunError:  # a chunk's size line longer than the reader's limit
        raise TransportError("the reply's chunk header is too long") from None
    raise TransportError(f"the reply's body exceeds {MAX_BODY_BYTES >> 20} MiB")


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            n = int(line, 16)
        except ValueError:
            n = -1
        if n < 0:
            raise TransportError(f"a chunk size that is not hex: {line[:40]!r}")
        if n == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size += n
        if size > MAX_BODY_BYTES:
            raise TransportError(f"the reply's body exceeds {MAX_BODY_BYTES >> 20} MiB")
        parts.append(await reader.readexactly(n))
        await reader.readexactly(2)  # the CRLF after each chunk
