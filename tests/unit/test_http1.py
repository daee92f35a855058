"""The lean HTTP/1.1 client, against a raw asyncio server that controls each connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from kubescim import http1
from kubescim.http1 import Http1Client, TransportError

# What the server does with one request on a connection: the bytes to answer, or None to hang up.
Respond = Callable[[bytes, bytes, int], Awaitable[bytes | None]]


@dataclass
class Server:
    url: str = ""
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)


def reply(status: int, body: bytes = b"{}", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def ok(head: bytes, body: bytes, n: int) -> bytes | None:
    return reply(200, b'{"n":%d}' % n)


@contextlib.asynccontextmanager
async def serve(respond: Respond = ok) -> AsyncIterator[Server]:
    server = Server()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        server.open_now += 1
        server.most_open = max(server.most_open, server.open_now)
        try:
            n = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                server.requests.append((head, body))
                answer = await respond(head, body, n)
                n += 1
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            server.open_now -= 1
            writer.close()

    listener = await asyncio.start_server(connection, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        await asyncio.sleep(0.01)  # the handlers see the client's connections close and return
        listener.close()


async def test_a_connection_is_kept_and_reused() -> None:
    async with serve() as server:
        client = Http1Client(server.url, None)
        first = await client.request("GET", "/a?x=1", [("Accept", "application/json")], None, 5)
        second = await client.request("POST", "/b", [], b'{"k":1}', 5)
        client.close()
    assert (first.status, first.body, second.body) == (200, b'{"n":0}', b'{"n":1}')
    assert server.connections == 1
    head, body = server.requests[1]
    assert head.startswith(b"POST /b HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Content-Length: 7" in head
    assert body == b'{"k":1}'
    assert server.requests[0][0].startswith(b"GET /a?x=1 HTTP/1.1")


async def test_a_chunked_reply_is_read_whole() -> None:
    async def chunked(head: bytes, body: bytes, n: int) -> bytes | None:
        return b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"

    async with serve(chunked) as server:
        client = Http1Client(server.url, None)
        answer = await client.request("GET", "/", [], None, 5)
        again = await client.request("GET", "/", [], None, 5)
        client.close()
    assert (answer.status, answer.body, answer.headers["retry-after"]) == (201, b"abcdef", "3")
    assert again.body == b"abcdef"
    assert server.connections == 1


async def test_connection_close_is_honoured() -> None:
    async def closing(head: bytes, body: bytes, n: int) -> bytes | None:
        return reply(200, b"{}", "Connection: close")

    async with serve(closing) as server:
        client = Http1Client(server.url, None)
        for _ in range(3):
            assert (await client.request("GET", "/", [], None, 5)).status == 200
        client.close()
    assert server.connections == 3


async def test_a_read_meeting_a_closed_connection_is_sent_again_but_a_write_is_not() -> None:
    # The server hangs up on every second request of a connection without answering: the race of a
    # kept-alive connection the server closes just as the client sends on it.
    async def hang_up_second(head: bytes, body: bytes, n: int) -> bytes | None:
        return None if n == 1 else reply(200)

    async with serve(hang_up_second) as server:
        client = Http1Client(server.url, None)
        await client.request("GET", "/", [], None, 5)
        assert (await client.request("GET", "/", [], None, 5)).status == 200
        assert server.connections == 2
        with pytest.raises(TransportError):  # the second connection's second request
            await client.request("POST", "/", [], b"{}", 5)
        client.close()
    assert server.connections == 2
    assert [head.split(b" ")[0] for head, _ in server.requests] == [b"GET", b"GET", b"GET", b"POST"]


async def test_a_timeout_drops_the_connection() -> None:
    async def slow_first(head: bytes, body: bytes, n: int) -> bytes | None:
        if n == 0:
            await asyncio.sleep(1)
        return reply(200)

    async with serve(slow_first) as server:
        client = Http1Client(server.url, None)
        with pytest.raises(TransportError, match="no reply within"):
            await client.request("GET", "/", [], None, 0.1)
        assert (await client.request("GET", "/", [], None, 5)).status == 200
        client.close()
    assert server.connections == 2


async def test_connections_are_bounded() -> None:
    async def slow(head: bytes, body: bytes, n: int) -> bytes | None:
        await asyncio.sleep(0.02)
        return reply(200)

    async with serve(slow) as server:
        client = Http1Client(server.url, None, max_connections=3)
        replies = await asyncio.gather(*(client.request("GET", "/", [], None, 5) for _ in range(12)))
        client.close()
    assert [r.status for r in replies] == [200] * 12
    assert server.connections == 3
    assert server.most_open == 3


async def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.05)
    async with serve() as server:
        client = Http1Client(server.url, None)
        await client.request("GET", "/", [], None, 5)
        await asyncio.sleep(0.1)
        await client.request("GET", "/", [], None, 5)
        client.close()
    assert server.connections == 2


async def test_nothing_listening_is_a_transport_error() -> None:
    async with serve() as server:
        url = server.url
    client = Http1Client(url, None)
    with pytest.raises(TransportError, match="connecting to"):
        await client.request("GET", "/", [], None, 5)


async def test_a_malformed_reply_is_a_transport_error() -> None:
    async def garbage(head: bytes, body: bytes, n: int) -> bytes | None:
        return b"NOT HTTP AT ALL\r\n\r\n"

    async with serve(garbage) as server:
        client = Http1Client(server.url, None)
        with pytest.raises(TransportError, match="malformed reply"):
            await client.request("GET", "/", [], None, 5)
        client.close()


def test_only_http_origins_are_taken() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Http1Client("unix:///var/run/x", None)
