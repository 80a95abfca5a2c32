"""One HTTP/1.1 client connection of chatgate.upstream.transport: an asyncio protocol whose responses
httptools parses
as bytes arrive, one request at a time.

The pool shares a connection between requests of different workspaces, so a connection never carries a
byte of one answer into the next request (h11 and httpcore's rules, which this one follows):
- each request gets a new parser (nothing parsed for the previous one survives it);
- a byte that arrives while no request is waiting (the connection sits idle in the pool) closes the
  connection at once; a byte after the end of the response (a body longer than its Content-Length, a
  second, unsolicited response) means the connection is never reused;
- body bytes are delivered only after the head of the pending request's response.

And what it refuses, as a 502 upstream: a response head (status line, headers, 1xx answers included) over
64 KiB (h11 stops at 100 KiB: an upstream streaming headers would otherwise grow the process without
bound), any transfer coding other than `chunked` alone (`gzip, chunked` would be relayed still gzipped),
and a 101 Switching Protocols (chatgate never asks for an upgrade). The answer to a HEAD request has no
body, whatever its headers say; 1xx answers are skipped.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import httptools
import httpx

from chatgate.clock import Stamp

Origin = tuple[bytes, str, int]
Head = tuple[int, bytes, list[tuple[bytes, bytes]]]

# The most a response's head (status lines and headers, 1xx answers included) may take.
HEAD_LIMIT = 65_536
# Unread body bytes at which reading from the socket pauses (resumed below a quarter of it).
_HIGH_WATER = 65_536
_TRANSFER_ENCODING = b"transfer-encoding"


class Failure(Exception):
    """A connection's failure, turned into httpx's exception (which needs the request) where it is raised.

    kind "stale": the server closed the connection (EOF or reset) before a byte of the response arrived;
    on a reused connection the pool sends the request again on a new one."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def as_httpx(self, request: httpx.Request) -> httpx.TransportError:
        kind = httpx.ReadError if self.kind == "read" else httpx.RemoteProtocolError
        return kind(str(self), request=request)


class _Leftover(Exception):
    """A second message begins after the response ended: stop parsing (the connection is spoiled)."""


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection. The pool (chatgate.upstream.transport.Transport) calls `send`, `read`, `idle`
    and
    `close`; asyncio and httptools call the rest."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self.origin: Origin | None = None
        self.idle_since: Stamp | None = None
        self._expiry: asyncio.TimerHandle | None = None  # while idle: the pool's timer that closes it
        self._leave_pool: Callable[[], None] | None = None  # while idle: takes it out of the pool's list
        self._lost = False  # closed, or the server is done with it
        self._spoiled = False  # bytes arrived that belong to no response: never reused
        self._active = False  # a request is using it (from `send` until the pool takes it back)
        self._paused = False
        self._new_response(head_only=False)

    def _new_response(self, *, head_only: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._codings: list[bytes] = []
        self._head: asyncio.Future[Head] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._received = 0
        self._head_bytes = 0  # bytes received while the head is incomplete
        self._head_size = 0  # bytes of status lines and headers parsed
        self._complete = False
        self._keep_alive = False
        self._error: Exception | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._headers_done = False

    # --- used by the pool ---

    def reusable(self) -> bool:
        return not self._lost and not self._spoiled

    def finished(self) -> bool:
        """Whether its response was read to its end and it may carry another request."""
        return self._complete and self._keep_alive and not self._lost and not self._spoiled

    def idle(self, since: Stamp, expiry: asyncio.TimerHandle, leave_pool: Callable[[], None]) -> None:
        """Back in the pool: from now on, any byte received closes it; `expiry` closes it when due; closed
        for any reason, it calls `leave_pool`."""
        self._active = False
        self.idle_since = since
        self._expiry, self._leave_pool = expiry, leave_pool

    def taken(self) -> None:
        """Out of the pool (to be used, or closed by the pool itself)."""
        self._leave_pool = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def close(self) -> None:
        self._lost = True
        self._active = False
        self._left()
        if self._transport is not None:
            self._transport.close()

    async def send(self, data: bytes, request: httpx.Request, seconds: float | None) -> Head:
        """Write a request; wait for the response's status line and headers. Raises httpx's exceptions,
        except `Failure("stale")` (the pool's to handle)."""
        assert self._transport is not None
        self._new_response(head_only=request.method == "HEAD")
        self._active = True
        head: asyncio.Future[Head] = asyncio.get_running_loop().create_future()
        self._head = head
        if self._lost:
            raise Failure("stale", "the server had closed the connection")
        self._transport.write(data)
        try:
            async with asyncio.timeout(seconds):
                return await head
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream sent no response in time", request=request) from None
        except Failure as failure:
            if failure.kind == "stale":
                raise
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
        if not self._active:  # idle in the pool: an answer nobody asked for
            self._spoiled = True
            self.close()
            return
        if self._complete:  # beyond the end of the response
            self._spoiled = True
            return
        self._received += len(data)
        if not self._headers_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Leftover):
                self._spoiled = True
                return
            cause = exc.__context__
            invalid = Failure("protocol", "an invalid HTTP response")
            self._fail(cause if isinstance(cause, Failure) else invalid)
            self.close()
            return
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(Failure("protocol", f"an invalid HTTP response ({exc})"))
            self.close()
            return
        if not self._headers_done and self._head_bytes > HEAD_LIMIT:
            self._fail(_head_too_large())
            self.close()

    def eof_received(self) -> bool:
        self._lost = True  # the server is done with this connection: never reused (read to its end first)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._left()
        if self._head is None:
            return
        if self._headers_done and not self._complete and self._error is None:
            if self._parser.should_keep_alive() is False and not self._has_length():
                self._complete = True  # a body delimited by the end of the connection
                self._wake()
                return
            self._fail(Failure("read", "the upstream closed the connection mid-response"))
        elif not self._headers_done:
            if self._received == 0:
                self._fail(Failure("stale", "the server closed the connection before answering"))
            else:
                self._fail(Failure("protocol", "the server disconnected without sending a whole response"))

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        if self._complete:
            raise _Leftover

    def on_status(self, reason: bytes) -> None:
        self._count_head(len(reason))
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self._headers.append((name, value))
        if len(name) == len(_TRANSFER_ENCODING) and name.lower() == _TRANSFER_ENCODING:
            self._codings += (coding.strip().lower() for coding in value.split(b","))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101:
            raise Failure("protocol", "the upstream switched protocols (101), which chatgate never asks for")
        if 100 <= status < 200:  # informational: the real response follows (its size counts to the cap)
            self._reason, self._headers, self._codings = b"", [], []
            return
        if self._codings and self._codings != [b"chunked"]:
            codings = b", ".join(self._codings).decode("latin-1")
            raise Failure("protocol", f"the upstream used the transfer coding '{codings}' (only chunked)")
        self._headers_done = True
        if self._head_only:  # no body, whatever Content-Length says; the next request gets a new parser
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result((status, self._reason, self._headers))

    def on_body(self, body: bytes) -> None:
        if not self._headers_done or self._complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._headers_done and not self._complete:
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()  # only meaningful here (llhttp resets it)
            self._wake()

    # --- helpers ---

    def _left(self) -> None:
        leave_pool = self._leave_pool
        self.taken()
        if leave_pool is not None:
            leave_pool()

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > HEAD_LIMIT:
            raise _head_too_large()

    def _has_length(self) -> bool:
        return any(name.lower() in (b"content-length", _TRANSFER_ENCODING) for name, _ in self._headers)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _fail(self, failure: Failure) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(failure)
        else:
            self._error = failure
            self._wake()


def _head_too_large() -> Failure:
    return Failure("protocol", f"the response head is larger than {HEAD_LIMIT // 1024} KiB")


def _as_httpx(error: Exception, request: httpx.Request) -> Exception:
    return error.as_httpx(request) if isinstance(error, Failure) else error
