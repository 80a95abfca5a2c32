"""The HTTP/1.1 transport under chatgate's httpx clients (Azure OpenAI, DynamoDB, Secrets Manager).

Why not httpx's own: every request on the path to a first token makes two calls (the admission write, then
Azure), a JSON answer three round trips, and httpx's default transport (httpcore over anyio's streams)
costs about 1 ms of CPU per call on loopback beyond the server's time, where asyncio's protocols with
httptools' C parser cost 0.15 ms (bench/http_client_bench.py). aiohttp is as fast but adds 160-260 ms of
imports to a cold start. So the clients stay httpx (its requests, responses, timeouts, exceptions and
httpx-sse), and only the transport underneath is this module: uvloop's (or asyncio's) transports and TLS,
httptools' response parser (already loaded: uvicorn parses requests with it).

What it does, as httpcore does for these clients: HTTP/1.1 with keep-alive, a pool of idle connections per
origin (closed after `keepalive_expiry` idle seconds, or when the server closes them), at most
`max_connections` requests in flight (then PoolTimeout after the pool timeout), the connect timeout, and
the read timeout between any two reads of a response. A response body is streamed as it arrives (the reader
pauses when 64 KiB wait unread); a connection goes back to the pool only after its response was read to the
end, and is closed if the response is abandoned. Failures are httpx's exceptions: ConnectError /
ConnectTimeout, ReadTimeout, ReadError, RemoteProtocolError, PoolTimeout. Not supported, and not needed by
these clients: HTTP/2, proxies, `Expect: 100-continue`, protocol upgrades.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Mapping

import httptools
import httpx

Origin = tuple[bytes, str, int]


class Client:
    """httpx's requests and responses sent straight to a transport (`Transport` here), with the client's
    timeouts: what httpx.AsyncClient does for these adapters, without what they never use and pay for on
    every call (about 0.2 ms; bench/http_client_bench.py): the cookie jar (a response's cookies are parsed
    into it, and it is merged into every request: a gateway must not carry one tenant's Azure cookies into
    another's requests anyway), redirects, auth flows, event hooks, and default headers (no
    `accept-encoding`: answers come uncompressed, as a relay wants them)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout) -> None:
        self._transport = transport
        self._extensions = {"timeout": timeout.as_dict()}

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        params: httpx.QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Request:
        return httpx.Request(
            method, url, params=params, headers=headers, content=content, extensions=self._extensions
        )

    async def send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """The response; with `stream`, its body unread (the caller closes it), else read and closed."""
        response = await self._transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def get(self, url: httpx.URL | str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return await self.send(self.build_request("GET", url, headers=headers))

    async def post(
        self, url: httpx.URL | str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return await self.send(self.build_request("POST", url, headers=headers, content=content))

    async def aclose(self) -> None:
        await self._transport.aclose()


# What chatgate's adapters take: `Client` in production; tests may hand them an httpx.AsyncClient (over
# httpx.MockTransport, say), whose methods of the same names `Client`'s mirror.
HttpClient = Client | httpx.AsyncClient

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# Unread body bytes at which reading from the socket pauses (resumed below a quarter of it).
_HIGH_WATER = 65_536


class Transport(httpx.AsyncBaseTransport):
    """httpx.AsyncClient(transport=Transport(...)): see the module's docstring."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 60.0,
    ) -> None:
        self._ssl = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._in_flight = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        self.connections_opened = 0  # for tests and benchmarks: how often a connection was not reused

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.raw_scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        timeouts = request.extensions.get("timeout") or {}
        await self._acquire(request, timeouts.get("pool"))
        connection: _Connection | None = None
        try:
            body = await _body(request)
            port = url.port or _DEFAULT_PORTS[url.raw_scheme]
            origin = (url.raw_scheme, url.raw_host.decode("ascii"), port)
            connection = self._reuse(origin) or await self._connect(origin, request, timeouts.get("connect"))
            head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
            for name, value in request.headers.raw:
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n")
            read_seconds = timeouts.get("read")
            status, reason, headers = await connection.send(b"".join(head) + body, request, read_seconds)
        except BaseException:
            if connection is not None:
                connection.close()
            self._in_flight.release()
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseBody(self, connection, request, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _acquire(self, request: httpx.Request, seconds: float | None) -> None:
        if not self._in_flight.locked():
            await self._in_flight.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(seconds):
                await self._in_flight.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free in time", request=request) from None

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.reusable(time.monotonic() - self._keepalive_expiry):
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, request: httpx.Request, seconds: float | None) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == b"https":
            tls = self._ssl if self._ssl is not None else httpx.create_ssl_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
            raise httpx.ConnectError(f"{host}:{port}: {exc}", request=request) from None
        connection.origin = origin
        self.connections_opened += 1
        return connection

    def _release(self, connection: _Connection, origin_key: Origin | None) -> None:
        """A response is done with its connection: back to the pool when read to its end, else closed."""
        if origin_key is not None and connection.finished():
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin_key, []).append(connection)
        else:
            connection.close()
        self._in_flight.release()


async def _body(request: httpx.Request) -> bytes:
    try:
        body = request.content
    except httpx.RequestNotRead:
        body = await request.aread()
    if request.headers.get("transfer-encoding", "").lower() == "chunked":
        return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return body


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(
        self, pool: Transport, connection: _Connection, request: httpx.Request, read_timeout: float | None
    ) -> None:
        self._pool, self._connection, self._request, self._timeout = pool, connection, request, read_timeout
        self._origin = connection.origin
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._connection.read(self._request, self._timeout):
            yield chunk
        self._release(reuse=True)

    async def aclose(self) -> None:
        self._release(reuse=False)

    def _release(self, *, reuse: bool) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._connection, self._origin if reuse else None)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed by httptools as bytes arrive."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.origin: Origin | None = None
        self.idle_since = 0.0
        self._lost = False
        self._paused = False
        self._new_response()

    def _new_response(self) -> None:
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[tuple[int, bytes, list[tuple[bytes, bytes]]]] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: Exception | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._headers_done = False

    # --- used by the transport ---

    def reusable(self, idle_after: float) -> bool:
        return not self._lost and self.idle_since >= idle_after

    def finished(self) -> bool:
        return self._complete and self._keep_alive and not self._lost

    def close(self) -> None:
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    async def send(
        self, data: bytes, request: httpx.Request, seconds: float | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Write a request; wait for the response's status line and headers."""
        assert self._transport is not None
        self._new_response()
        self._head = asyncio.get_running_loop().create_future()
        if self._lost:
            raise httpx.RemoteProtocolError("the connection was closed", request=request)
        self._transport.write(data)
        try:
            async with asyncio.timeout(seconds):
                return await self._head
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream sent no response in time", request=request) from None
        except _Failure as failure:
            raise failure.as_httpx(request) from None

    async def read(self, request: httpx.Request, seconds: float | None) -> bytes:
        """The next piece of the response body; b"" at its end."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise _as_httpx(self._error, request)
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(seconds):
                    await self._wakeup
            except TimeoutError:
                raise httpx.ReadTimeout("the upstream stopped sending in time", request=request) from None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _HIGH_WATER // 4 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Failure("protocol", f"an invalid HTTP response ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        self._lost = True  # the server is done with this connection: never reused (read to its end first)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._headers_done and not self._complete and self._error is None:
            if self._parser.should_keep_alive() is False and not self._has_length():
                self._complete = True  # a body delimited by the end of the connection
                self._wake()
                return
            self._fail(_Failure("read", "the upstream closed the connection mid-response"))
        elif not self._headers_done:
            self._fail(_Failure("protocol", "the server disconnected without sending a response"))

    # --- httptools callbacks ---

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real response follows
            self._reason, self._headers = b"", []
            return
        self._headers_done = True
        if self._head is not None and not self._head.done():
            self._head.set_result((status, self._reason, self._headers))

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._headers_done:
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()  # only meaningful here (llhttp resets it)
            self._wake()

    # --- helpers ---

    def _has_length(self) -> bool:
        return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _fail(self, failure: _Failure) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(failure)
        else:
            self._error = failure
            self._wake()


class _Failure(Exception):
    """A connection's failure, turned into httpx's exception (which needs the request) where it is raised."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def as_httpx(self, request: httpx.Request) -> httpx.TransportError:
        kind = httpx.RemoteProtocolError if self.kind == "protocol" else httpx.ReadError
        return kind(str(self), request=request)


def _as_httpx(error: Exception, request: httpx.Request) -> Exception:
    return error.as_httpx(request) if isinstance(error, _Failure) else error


def tls_context(verify: ssl.SSLContext | bool = True) -> ssl.SSLContext:
    """httpx's `verify` as a TLS context: a context as it is, True: certifi's CA bundle, False: unchecked."""
    return verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
