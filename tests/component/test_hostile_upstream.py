"""A hostile upstream against chatgate.upstream.transport directly: each class of misbehaviour the issue
"Connections
you can trust" lists, played by a scripted loopback server, and what the client must see. Where it makes the
point, httpx's default transport (httpcore and h11) is played the same server. The classes a request through
the gateway can reach are also in test_hostile_gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from chatgate.clock import Clock
from chatgate.upstream.http11 import HEAD_LIMIT
from chatgate.upstream.transport import Client, Transport
from tests.component.test_transport import OK, Server, chunk, client, keep_answering, serving

# An answer the server sends to nobody: a response head and the first half of its body.
PHANTOM = b'HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{"secret": "workspace A'


async def wait_for(predicate: object, seconds: float = 5) -> None:
    """Poll a condition the loop makes true (bounded)."""
    for _ in range(int(seconds / 0.01)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never became true")


# --- requests that would not be one request -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"api-key": "key\r\nGET /smuggled HTTP/1.1"},
        {"api-key": "key\nx-injected: 1"},
        {"api-key": "key\x00"},
        {"x-bad\r\nname": "v"},
        {"bad name": "v"},
    ],
    ids=["crlf-value", "lf-value", "nul-value", "crlf-name", "space-name"],
)
@pytest.mark.parametrize("kind", ["chatgate", "httpcore"])
async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(headers, kind):
    ref: list[Server] = []
    async with serving(keep_answering(ref)) as server:
        ref.append(server)
        http = client() if kind == "chatgate" else httpx.AsyncClient(trust_env=False)
        async with http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.post(f"{server.url}/x", content=b"{}", headers=headers)
            assert (await http.post(f"{server.url}/x", content=b"{}")).status_code == 200
        assert len(server.requests) == 1  # only the second, well-formed request reached it
        assert not any(b"smuggled" in request or b"injected" in request for request in server.requests)


# --- bytes that belong to no request ---------------------------------------------------------------------


async def test_bytes_that_arrive_while_a_connection_is_idle_never_reach_the_next_request():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        if server.connections == 1:
            writer.write(OK)
            await writer.drain()
            await asyncio.sleep(0.05)  # the client has the answer and pools the connection
            writer.write(PHANTOM)  # a late answer nobody asked for
            await reader.read()  # until the client drops the connection
            return
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"b":1}')
        await keep_answering([server])(reader, writer)

    async with serving(handler) as server, client() as http:
        assert (await http.get(f"{server.url}/a")).content == b"{}"
        await asyncio.wait_for(server.closed.wait(), 5)  # the client closed the connection that spoke unasked
        second = await http.get(f"{server.url}/b")
        assert (second.status_code, second.content) == (200, b'{"b":1}')
        assert server.connections == 2


async def test_a_body_longer_than_its_content_length_never_reaches_the_next_request():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        if server.connections == 1:
            writer.write(OK + PHANTOM)  # 2 bytes announced, the rest is somebody else's answer
            await server.read_request(reader)  # a client that reused the connection would be answered here
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"b":1}')
            await reader.read()
            return
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"b":1}')
        await keep_answering([server])(reader, writer)

    async with serving(handler) as server, client() as http:
        first = await http.get(f"{server.url}/a")
        assert first.content == b"{}"
        second = await http.get(f"{server.url}/b")
        assert (second.status_code, second.content) == (200, b'{"b":1}')
        assert server.connections == 2  # the spoiled connection was not used again


# --- heads: size, 1xx, 101, HEAD, transfer codings --------------------------------------------------------


@pytest.mark.parametrize("kind", ["chatgate", "httpcore"])
async def test_a_response_head_that_never_ends_is_refused_after_a_bounded_read(kind):
    sent = 0
    line = b"x-flood: " + b"a" * 1000 + b"\r\n"

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while sent < 64 * 1024 * 1024:  # bounded: 64 MiB, far more than any cap
            writer.write(line * 64)
            sent += len(line) * 64
            await writer.drain()

    timeout = httpx.Timeout(3, connect=2)
    async with serving(flood) as server:
        httpcore = httpx.AsyncClient(trust_env=False, timeout=timeout)
        http = client(timeout=timeout) if kind == "chatgate" else httpcore
        async with http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"{server.url}/")
        await asyncio.wait_for(server.closed.wait(), 5)
    assert sent < 32 * 1024 * 1024  # the client hung up long before (socket buffers hold the rest)


async def test_a_head_within_the_cap_is_read_and_one_past_it_is_refused():
    def answer(size: int) -> bytes:
        filler = b"x-big: " + b"a" * (size - 9) + b"\r\n"
        return b"HTTP/1.1 200 OK\r\n" + filler + b"content-length: 2\r\n\r\n{}"

    for size, fits in [(HEAD_LIMIT // 2, True), (HEAD_LIMIT + 1024, False)]:
        ref: list[Server] = []
        async with serving(keep_answering(ref, answer(size))) as server, client() as http:
            ref.append(server)
            if fits:
                assert (await http.get(f"{server.url}/")).content == b"{}"
            else:
                with pytest.raises(httpx.RemoteProtocolError, match="64 KiB"):
                    await http.get(f"{server.url}/")


async def test_informational_answers_are_skipped_and_a_protocol_switch_is_refused(caplog):
    answers = {
        "/early-hints": b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + OK,
        "/upgrade": b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    }

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await server.read_request(reader)
            writer.write(answers[request.split(b" ")[1].decode()])

    caplog.set_level(logging.DEBUG)
    async with serving(handler) as server, client() as http:
        response = await http.get(f"{server.url}/early-hints")
        assert (response.status_code, response.content) == (200, b"{}")
        with pytest.raises(httpx.RemoteProtocolError, match="switched protocols"):
            await http.get(f"{server.url}/upgrade")
        assert (await http.get(f"{server.url}/early-hints")).status_code == 200
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text


async def test_the_answer_to_a_head_request_has_no_body_whatever_its_content_length():
    answers = {
        b"HEAD": b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        b"GET": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    }

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await server.read_request(reader)
            writer.write(answers[request.split(b" ")[0]])

    async with serving(handler) as server, client(timeout=httpx.Timeout(3, connect=2)) as http:
        head = await http.head(f"{server.url}/")
        assert (head.status_code, head.headers["content-length"], head.content) == (200, "1000", b"")
        assert (await http.get(f"{server.url}/")).content == b"hello"
        assert server.connections == 1  # the connection stayed usable


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"chunked, chunked", b"identity", b"x-custom"])
async def test_a_transfer_coding_other_than_chunked_alone_is_refused(coding):
    body = chunk(b"\x1f\x8b compressed bytes") + b"0\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: " + coding + b"\r\n\r\n" + body
    ref: list[Server] = []
    timeout = httpx.Timeout(3, connect=2)
    async with serving(keep_answering(ref, answer)) as server, client(timeout=timeout) as http:
        ref.append(server)
        with pytest.raises(httpx.RemoteProtocolError, match="transfer coding"):
            await http.get(f"{server.url}/")


# --- stale connections -----------------------------------------------------------------------------------


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


@pytest.mark.parametrize("close", ["eof", "reset"])
async def test_a_reused_connection_the_server_had_dropped_is_retried_once_on_a_new_one(close):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(OK)
        if server.connections == 1:  # a load balancer that forgot the idle connection: the next request ...
            await server.read_request(reader)
            if close == "reset":
                _reset(writer)  # ... is answered with a reset
            return  # ... or with the end of the connection
        await keep_answering([server])(reader, writer)

    async with serving(handler) as server, client() as http:
        assert (await http.post(f"{server.url}/a", content=b"{}")).status_code == 200
        assert (await http.post(f"{server.url}/b", content=b"{}")).status_code == 200
        assert server.connections == 2
        assert [request.split(b" ")[1] for request in server.requests] == [b"/a", b"/b", b"/b"]


async def test_a_new_connection_that_fails_or_a_reused_one_that_answered_in_part_is_not_retried():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-le")  # a byte of an answer arrived: Azure saw the request
        await writer.drain()

    async with serving(handler) as server, client() as http:
        assert (await http.post(f"{server.url}/a", content=b"{}")).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{server.url}/b", content=b"{}")
        assert len(server.requests) == 2  # sent once

    async def drops(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)  # and no answer, on a connection never used before

    async with serving(drops) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{server.url}/a", content=b"{}")
        assert len(server.requests) == 1


# --- idle expiry and clocks ------------------------------------------------------------------------------


async def test_an_idle_connection_is_closed_at_keepalive_expiry_even_if_nothing_reuses_it():
    ref: list[Server] = []
    transport = Transport(keepalive_expiry=0.2, trust_env=False)
    async with serving(keep_answering(ref)) as server:
        ref.append(server)
        http = Client(transport, httpx.Timeout(5, connect=2))
        assert (await http.get(f"{server.url}/")).status_code == 200
        assert transport.idle_connections() == 1
        await asyncio.wait_for(server.closed.wait(), 5)  # the client closed it, nobody asked
        assert transport.idle_connections() == 0
        await http.aclose()


async def test_a_connection_closed_while_idle_leaves_the_pool_at_once():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(OK)  # then the server closes it (FIN), long before the keep-alive expiry

    transport = Transport(keepalive_expiry=60, trust_env=False)
    async with serving(handler) as server:
        http = Client(transport, httpx.Timeout(5, connect=2))
        assert (await http.get(f"{server.url}/")).status_code == 200
        await wait_for(lambda: transport.idle_connections() == 0)  # not left in the pool until reused
        assert (await http.get(f"{server.url}/")).status_code == 200
        assert server.connections == 2
        await http.aclose()


class FrozenMonotonic:
    """A sandbox frozen for two minutes: the monotonic clock stood still, the wall clock moved on."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: 100.0, wall=lambda: self.wall)


async def test_keepalive_expiry_counts_a_freeze_the_monotonic_clock_did_not_see():
    ref: list[Server] = []
    frozen = FrozenMonotonic()
    transport = Transport(keepalive_expiry=60, trust_env=False, clock=frozen.clock())
    async with serving(keep_answering(ref)) as server:
        ref.append(server)
        http = Client(transport, httpx.Timeout(5, connect=2))
        await http.get(f"{server.url}/")
        await http.get(f"{server.url}/")
        assert server.connections == 1  # reused while fresh
        frozen.wall += 120  # thawed two minutes later: past expiry, though monotonic says 0 s
        await http.get(f"{server.url}/")
        assert server.connections == 2
        await http.aclose()


# --- addresses and proxies -------------------------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose SYNs are dropped (its accept queue is full): a connection attempt hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_a_black_holed_address_does_not_spend_the_connect_timeout(black_hole, monkeypatch):
    ref: list[Server] = []
    async with serving(keep_answering(ref)) as server:
        ref.append(server)
        good = int(server.url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()

        async def two_addresses(host: object, port: object, **kwargs: object) -> list[tuple[object, ...]]:
            stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*stream, ("127.0.0.1", black_hole)), (*stream, ("127.0.0.1", good))]

        monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
        async with client(timeout=httpx.Timeout(5, connect=2)) as http:
            assert (await http.get("http://upstream.test:443/")).status_code == 200


async def test_http_proxy_is_honoured_and_no_proxy_and_loopback_are_exempt(monkeypatch):
    async def proxy_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await proxy.read_request(reader)
            writer.write(OK)

    ref: list[Server] = []
    async with serving(proxy_handler) as proxy, serving(keep_answering(ref)) as direct:
        ref.append(direct)
        port = int(direct.url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()

        async def loopback(host: object, port: object, **kwargs: object) -> list[tuple[object, ...]]:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

        monkeypatch.setattr(loop, "getaddrinfo", loopback)  # every name is this host (loopback only)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "exempt.test")
        async with httpx.AsyncClient(transport=Transport(), trust_env=False) as http:
            assert (await http.get("http://upstream.test/v1/x")).status_code == 200  # through the proxy
            assert (await http.get(f"http://exempt.test:{port}/y")).status_code == 200  # NO_PROXY: direct
            assert (await http.get(f"{direct.url}/z")).status_code == 200  # loopback: direct
        assert proxy.requests[0].startswith(b"GET http://upstream.test/v1/x HTTP/1.1\r\n")
        assert len(proxy.requests) == 1 and len(direct.requests) == 2
