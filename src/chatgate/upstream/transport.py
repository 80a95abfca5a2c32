"""The HTTP/1.1 transport under chatgate's httpx clients (Azure OpenAI, DynamoDB, Secrets Manager).

Why not httpx's own: every request on the path to a first token makes two calls (the admission write, then
Azure), a JSON answer three round trips, and httpx's default transport (httpcore over anyio's streams)
costs about 1 ms of CPU per call on loopback beyond the server's time, where asyncio's protocols with
httptools' C parser cost 0.15 ms (bench/http_client_bench.py). aiohttp is as fast but adds 160-260 ms of
imports to a cold start. So the clients stay httpx (its requests, responses, timeouts, exceptions and
httpx-sse), and only the transport underneath is this module: uvloop's (or asyncio's) transports and TLS,
httptools' response parser (already loaded: uvicorn parses requests with it).

What it does, as httpcore does for these clients: HTTP/1.1 with keep-alive, a pool of idle connections per
origin, at most `max_connections` requests in flight (then PoolTimeout after the pool timeout), the connect
timeout, and the read timeout between any two reads of a response. A response body is streamed as it
arrives (the reader pauses when 64 KiB wait unread); a connection goes back to the pool only after its
response was read to the end, and is closed if the response is abandoned. Failures are httpx's exceptions:
ConnectError / ConnectTimeout, ReadTimeout, ReadError, RemoteProtocolError, LocalProtocolError, PoolTimeout.

Defensive as h11 and httpcore are (one pool per Azure origin serves every workspace):
- a header name that is not a token, or a value holding CR, LF or NUL, is refused (LocalProtocolError)
  before anything is sent: a line break would smuggle a second request onto the connection;
- each connection's rules for responses (a new parser per request, bytes while idle or past the end of a
  response retire the connection, a 64 KiB cap on the head, HEAD / 1xx / 101, `chunked` as the only
  transfer coding) are chatgate.upstream.http11's;
- a request that fails on a reused connection because the server had closed it (EOF or reset before a byte
  of the response) is sent once more on a new connection; nothing else is retried;
- idle connections are closed once past `keepalive_expiry`, whether or not a request comes to reuse them,
  the expiry measured by chatgate.clock (robust to a monotonic clock that stood still while frozen);
- a new connection tries the host's addresses as RFC 8305 says (aiohappyeyeballs, aiohttp's);
- `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` with `NO_PROXY`, read once: an origin a proxy applies to is
  served by httpx's own transport through it (httpcore, CONNECT for https), at httpcore's cost per call;
  loopback origins (the Parameters and Secrets extension on localhost) never are.
Not supported, and not needed by these clients: HTTP/2, `Expect: 100-continue`, protocol upgrades.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping

import aiohappyeyeballs
import httpx

from chatgate.clock import SYSTEM, Clock
from chatgate.upstream.http11 import Connection, Failure, Head, Origin


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
# A header name is an RFC 9110 token; a value holds no CR, LF or NUL (h11's rules, minus obs-fold).
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Happy Eyeballs (RFC 8305): the next address is tried when one has not connected within this.
_HAPPY_EYEBALLS_DELAY = 0.25


def unsafe_header_value(value: str) -> bool:
    """Whether a header value holds CR, LF or NUL, which the transport refuses to send (a value with a
    line break would end the header and smuggle what follows onto the connection)."""
    return "\r" in value or "\n" in value or "\0" in value


class Transport(httpx.AsyncBaseTransport):
    """httpx.AsyncClient(transport=Transport(...)): see the module's docstring."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 60.0,
        trust_env: bool = True,
        clock: Clock = SYSTEM,
    ) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._clock = clock
        self._in_flight = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[Connection]] = {}
        self._proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._proxied: dict[Origin, httpx.AsyncBaseTransport | None] = {}
        self._proxy_transports: dict[str, httpx.AsyncBaseTransport] = {}
        self.connections_opened = 0  # for tests and benchmarks: how often a connection was not reused

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.raw_scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        origin = (url.raw_scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[url.raw_scheme])
        if self._proxies:
            proxy = self._proxy(origin)
            if proxy is not None:
                return await proxy.handle_async_request(request)
        head = _head(request)  # refused before anything is sent
        timeouts = request.extensions.get("timeout") or {}
        await self._acquire(request, timeouts.get("pool"))
        try:
            data = head + await _body(request)
            connection, (status, reason, headers) = await self._exchange(origin, data, request, timeouts)
        except BaseException:
            self._in_flight.release()
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseBody(self, connection, request, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _exchange(
        self, origin: Origin, data: bytes, request: httpx.Request, timeouts: Mapping[str, float | None]
    ) -> tuple[Connection, Head]:
        """Send on a pooled connection (or a new one) and wait for the response's head. A reused connection
        the server had closed before a byte of the response arrived (EOF, reset): once more on a new one.
        Nothing else is sent twice (a POST that reached Azure may have been billed)."""
        connection = self._reuse(origin)
        for retry in (connection is not None, False):
            if connection is None:
                connection = await self._connect(origin, request, timeouts.get("connect"))
            try:
                return connection, await connection.send(data, request, timeouts.get("read"))
            except Failure as failure:  # "stale"
                connection.close()
                connection = None
                if not retry:
                    raise failure.as_httpx(request) from None
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in list(connections):
                connection.close()
        self._idle.clear()
        for proxy in self._proxy_transports.values():
            await proxy.aclose()
        self._proxy_transports.clear()
        self._proxied.clear()

    def idle_connections(self) -> int:
        """How many connections wait in the pool (for tests)."""
        return sum(len(connections) for connections in self._idle.values())

    async def _acquire(self, request: httpx.Request, seconds: float | None) -> None:
        if not self._in_flight.locked():
            await self._in_flight.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(seconds):
                await self._in_flight.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free in time", request=request) from None

    def _reuse(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = self._clock.now()
        while idle:
            connection = idle.pop()
            connection.taken()
            since = connection.idle_since
            if connection.reusable() and since and not self._clock.passed(since, self._keepalive_expiry, now):
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, request: httpx.Request, seconds: float | None) -> Connection:
        """A new connection: the host's addresses tried as RFC 8305 says (the next one after 250 ms
        without an answer, families interleaved), so a black-holed address does not spend the whole
        connect timeout; then TLS."""
        scheme, host, port = origin
        tls = None
        if scheme == b"https":
            tls = self._ssl if self._ssl is not None else httpx.create_ssl_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY, interleave=1
                )
                _, connection = await loop.create_connection(
                    Connection, sock=sock, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
            raise httpx.ConnectError(f"{host}:{port}: {exc}", request=request) from None
        connection.origin = origin
        self.connections_opened += 1
        return connection

    def _release(self, connection: Connection, origin_key: Origin | None) -> None:
        """A response is done with its connection: back to the pool when read to its end, else closed.
        An idle connection is closed once past keep-alive expiry, whether or not a request comes."""
        if origin_key is not None and connection.finished():
            idle = self._idle.setdefault(origin_key, [])
            idle.append(connection)
            expiry = asyncio.get_running_loop().call_later(self._keepalive_expiry, connection.close)
            connection.idle(self._clock.now(), expiry, functools.partial(_leave, idle, connection))
        else:
            connection.close()
        self._in_flight.release()

    def _proxy(self, origin: Origin) -> httpx.AsyncBaseTransport | None:
        """httpx's own transport (httpcore: CONNECT for https) for an origin HTTP(S)_PROXY applies to and
        NO_PROXY does not exempt, else None (this transport)."""
        try:
            return self._proxied[origin]
        except KeyError:
            pass
        scheme, host, port = origin
        url = self._proxies.get(scheme.decode()) or self._proxies.get("all")
        proxy = None
        # proxy_bypass_environment: NO_PROXY as urllib (and requests, botocore) read it; not in typeshed.
        # Loopback is never proxied (the Parameters and Secrets extension listens on localhost).
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if url and not _loopback(host) and not bypass(f"{host}:{port}", self._proxies):
            proxy = self._proxy_transports.get(url)
            if proxy is None:
                proxy = self._proxy_transports[url] = httpx.AsyncHTTPTransport(
                    proxy=url,
                    verify=self._ssl if self._ssl is not None else True,
                    limits=httpx.Limits(
                        max_connections=self._max_connections, keepalive_expiry=self._keepalive_expiry
                    ),
                )
        self._proxied[origin] = proxy
        return proxy


def _leave(idle: list[Connection], connection: Connection) -> None:
    """An idle connection closed (expired, by the server, or for speaking unasked) leaves its pool."""
    if connection in idle:
        idle.remove(connection)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _head(request: httpx.Request) -> bytes:
    """The request line and headers; LocalProtocolError for a header that would not be one header."""
    method = request.method.encode("ascii")
    if not _TOKEN.fullmatch(method):
        raise httpx.LocalProtocolError("the request method is not an HTTP token", request=request)
    head = [method, b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise httpx.LocalProtocolError(
                f"the value of header {name.decode('latin-1')!r} holds CR, LF or NUL", request=request
            )
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError("a header name is not an HTTP token", request=request)
        head += (name, b": ", value, b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


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
        self, pool: Transport, connection: Connection, request: httpx.Request, read_timeout: float | None
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


def tls_context(verify: ssl.SSLContext | bool = True) -> ssl.SSLContext:
    """httpx's `verify` as a TLS context: a context as it is, True: certifi's CA bundle, False: unchecked."""
    return verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
