"""A lean HTTP/1.1 client for the API server's unary requests (everything but watches).

Why not aiohttp for these: behind the gateway every SCIM write is one API-server round trip, so the
client's CPU per request is the gateway's overhead, paid beside the API server on the same cores.
A profile of the gateway under POST /Users put about a fifth of its CPU in aiohttp's Python for
the API request and its response. This client writes each request with one call, parses the reply
with llhttp (httptools, which uvicorn already uses for the gateway's own requests), and does nothing
else: no cookies, no redirects, no compression, no proxies. Callers that need a proxy, and every
watch, stay on aiohttp.

Connections are kept alive and reused newest first. One idle for longer than IDLE_SECONDS is closed
rather than reused, well inside any server's or load balancer's idle timeout, so that a request is
not sent on a connection the server is closing. A GET that still meets a connection closed before
any byte of its reply is sent again once on a new connection; other methods are not repeated, since
the server may have acted on them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

IDLE_SECONDS = 15.0


class TransportError(Exception):
    """The request got no complete reply: connecting failed, the connection broke, or it timed out."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._parser = httptools.HttpResponseParser(self)
        self._reply: asyncio.Future[Reply] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.received_any = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(TransportError(f"malformed reply: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(TransportError(f"connection closed: {exc}" if exc else "connection closed by the server"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        reply = Reply(self._parser.get_status_code(), self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        self._headers, self._body = {}, []
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(reply)

    def send(self, request: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.received_any = False
        self._reply = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._reply

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: TransportError) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)


class Http1Client:
    """Requests to one origin (scheme://host:port) over a bounded pool of keep-alive connections."""

    def __init__(
        self,
        origin: str,
        ssl_context: ssl.SSLContext | None,
        *,
        server_hostname: str | None = None,
        max_connections: int = 100,
        connect_timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl_context if parts.scheme == "https" else None
        self._server_hostname = server_hostname if self._ssl is not None else None
        self._host_header = parts.netloc.rsplit("@", 1)[-1].encode("idna")
        self._base_path = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None, timeout: float | None
    ) -> Reply:
        """`target` is the path with its query, already encoded."""
        lines = [f"{method} {self._base_path}{target} HTTP/1.1".encode(), b"Host: " + self._host_header]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d" % len(body or b""))
        message = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    return await self._exchange(method, message)
            except TimeoutError as error:
                raise TransportError(f"no reply within {timeout} s") from error

    async def _exchange(self, method: str, message: bytes) -> Reply:
        connection, reused = await self._connection()
        try:
            reply = await connection.send(message)
        except TransportError:
            connection.close()
            if not (reused and method == "GET" and not connection.received_any):
                raise
            # The server closed a kept-alive connection as we sent: a read is safe to repeat.
            connection, _ = await self._connection(fresh=True)
            try:
                reply = await connection.send(message)
            except BaseException:
                connection.close()
                raise
        except BaseException:  # cancelled or timed out mid-reply: the connection's state is unknown
            connection.close()
            raise
        now = time.monotonic()
        if not connection.closed:
            connection.idle_since = now
            self._idle.append(connection)
        # The oldest idle connections are the least used after a burst: close them once stale.
        while self._idle and now - self._idle[0].idle_since >= IDLE_SECONDS:
            self._idle.popleft().close()
        return reply

    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection, True
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl, server_hostname=self._server_hostname
                )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            raise TransportError(f"connecting to {self._host}:{self._port}: {type(error).__name__}: {error}") from error
        return connection, False

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
