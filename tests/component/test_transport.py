"""chatgate.upstream.transport under httpx: what a client of Azure or AWS would notice on the wire.

Each test runs a scripted HTTP/1.1 server on loopback (asyncio streams, one handler per connection) and
talks to it through httpx.AsyncClient(transport=Transport(...)), as the gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from chatgate.upstream.transport import Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.closed = asyncio.Event()  # set when a connection has been closed on the server's side
        self.requests: list[bytes] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went, or the test ended
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.closed.set()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}"
    async with listener:
        yield server


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def client(**kwargs: object) -> httpx.AsyncClient:
    timeout = kwargs.pop("timeout", httpx.Timeout(5, connect=2))
    return httpx.AsyncClient(transport=Transport(**kwargs), timeout=timeout, trust_env=False)  # type: ignore[arg-type]


def keep_answering(server_ref: list[Server], answer: bytes = OK) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server_ref[0].read_request(reader)
            writer.write(answer)

    return handler


async def test_requests_reuse_one_connection_and_send_what_httpx_built():
    ref: list[Server] = []
    async with serving(keep_answering(ref)) as server, client() as http:
        ref.append(server)
        for n in range(3):
            response = await http.post(f"{server.url}/path?x={n}", json={"n": n}, headers={"api-key": "k"})
            assert (response.status_code, response.json()) == (200, {})
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /path?x=0 HTTP/1.1\r\n")
        assert b"\r\napi-key: k\r\n" in first and first.endswith(b'{"n":0}')
        assert b"host: 127.0.0.1:" in first.lower()


async def test_a_chunked_stream_arrives_piece_by_piece_before_it_ends():
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n" + chunk(b"data: first\n\n"))
        await release.wait()  # the client must see the first event while this waits
        writer.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")

    async with (
        serving(handler) as server,
        client() as http,
        http.stream("POST", f"{server.url}/s", content=b"{}") as response,
    ):
        pieces = response.aiter_raw()
        assert await asyncio.wait_for(pieces.__anext__(), 5) == b"data: first\n\n"
        release.set()
        assert b"".join([piece async for piece in pieces]) == b"data: second\n\n"


async def test_a_large_body_is_read_whole_through_the_pause_at_high_water():
    body = bytes(range(256)) * 8192  # 2 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    async with serving(handler) as server, client() as http:
        async with http.stream("GET", f"{server.url}/big") as response:
            received = b""
            async for piece in response.aiter_raw():
                received += piece
                await asyncio.sleep(0)  # a slow reader
        assert received == body


async def test_a_body_that_ends_with_the_connection_is_read_to_its_end():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with serving(handler) as server, client() as http:
        assert (await http.get(f"{server.url}/")).content == b"all of it"
        assert (await http.get(f"{server.url}/")).content == b"all of it"  # a new connection
        assert server.connections == 2


async def test_an_abandoned_stream_closes_its_connection_and_the_next_request_opens_another():
    endless = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"5\r\nhello\r\n" * 3
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        if server.connections > 1:
            writer.write(OK)
            return
        writer.write(endless)  # and never the last chunk
        await reader.read()  # until the client closes
        closed.set()

    async with serving(handler) as server, client() as http:
        async with http.stream("POST", f"{server.url}/s", content=b"{}") as response:
            async for _ in response.aiter_raw():
                break  # the client leaves mid-stream
        await asyncio.wait_for(closed.wait(), 5)  # the upstream sees the connection go
        assert (await http.post(f"{server.url}/s", content=b"{}")).status_code == 200
        assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(OK)  # keep-alive by HTTP/1.1 default, then the server closes it anyway

    async with serving(handler) as server, client() as http:
        assert (await http.get(f"{server.url}/")).status_code == 200
        await asyncio.wait_for(server.closed.wait(), 5)  # closed on the server's side, FIN sent
        await asyncio.sleep(0.05)  # the client's loop reads it while the connection is idle
        assert (await http.get(f"{server.url}/")).status_code == 200
        assert server.connections == 2


async def test_a_connection_idle_longer_than_keepalive_expiry_is_replaced():
    ref: list[Server] = []
    async with serving(keep_answering(ref)) as server, client(keepalive_expiry=0.01) as http:
        ref.append(server)
        await http.get(f"{server.url}/")
        await asyncio.sleep(0.05)
        await http.get(f"{server.url}/")
        assert server.connections == 2


async def test_silence_before_the_headers_and_between_pieces_is_a_read_timeout():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await asyncio.sleep(10)

    async with serving(silent) as server, client(timeout=httpx.Timeout(0.2, connect=2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{server.url}/")

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(10)

    async with (
        serving(stalls) as server,
        client(timeout=httpx.Timeout(0.2, connect=2)) as http,
        http.stream("GET", f"{server.url}/") as response,
    ):
        with pytest.raises(httpx.ReadTimeout):
            async for _ in response.aiter_raw():
                pass


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", httpx.RemoteProtocolError),  # closed without a response
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", httpx.ReadError),  # closed mid-body
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
    ],
    ids=["no-response", "mid-body", "not-http"],
)
async def test_a_broken_answer_is_an_httpx_transport_error(answer, error):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with serving(handler) as server, client() as http:
        with pytest.raises(error):
            await http.get(f"{server.url}/")
        ref: list[Server] = [server]
        server.handler = keep_answering(ref)
        assert (await http.get(f"{server.url}/")).status_code == 200  # the pool recovers


async def test_a_refused_connection_is_a_connect_error():
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_requests_beyond_max_connections_wait_for_one_and_then_time_out():
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await gate.wait()
            writer.write(OK)

    timeout = httpx.Timeout(5, connect=2, pool=0.2)
    async with serving(handler) as server, client(max_connections=1, timeout=timeout) as http:
        first = asyncio.create_task(http.get(f"{server.url}/"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await http.get(f"{server.url}/")
        waiting = asyncio.create_task(http.get(f"{server.url}/"))
        await asyncio.sleep(0.05)
        gate.set()
        assert [(await first).status_code, (await waiting).status_code] == [200, 200]
        assert server.connections == 1  # the waiting request took the first one's connection


async def test_a_cancelled_request_gives_its_place_back_and_leaves_no_half_used_connection():
    ref: list[Server] = []
    stall = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ref[0].read_request(reader)
        if not stall.is_set():
            stall.set()
            await asyncio.sleep(10)
        writer.write(OK)
        await keep_answering(ref)(reader, writer)

    async with serving(handler) as server, client(max_connections=1) as http:
        ref.append(server)
        task = asyncio.create_task(http.get(f"{server.url}/"))
        await stall.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await http.get(f"{server.url}/")).status_code == 200
        assert server.connections == 2


async def test_https_is_verified_against_the_given_context(tmp_path):
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    ref: list[Server] = []

    async with serving(keep_answering(ref), tls=server_tls) as server:
        ref.append(server)
        async with client(ssl_context=trusting) as http:
            assert (await http.post(f"{server.url}/x", content=b"{}")).status_code == 200
            assert (await http.post(f"{server.url}/x", content=b"{}")).status_code == 200
        async with client(ssl_context=ssl.create_default_context()) as http:  # does not trust that CA
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{server.url}/")
