"""Fault injection on loopback: an AWS JSON-protocol proxy in front of moto that fails chosen calls, and
a TCP port that accepts connections and resets them (an upstream that dies before answering).

    with FaultyAws(moto_url) as proxy:
        proxy.fail = lambda call: "throttle" if call.table == "chatgate-ratelimits" else None
        # point boto3 at proxy.url (AWS_ENDPOINT_URL_DYNAMODB / _SECRETS_MANAGER)

Faults: "throttle" (400 ThrottlingException, which boto3 retries then raises), "capacity"
(ProvisionedThroughputExceededException), "error" (500 InternalServerError), "reset" (the connection is
closed without an answer), "lost" (the call is applied by moto, then the connection is closed without its
answer: the client cannot tell it from "reset").
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_ERRORS = {
    "throttle": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "capacity": (400, "ProvisionedThroughputExceededException", "The level of configured throughput ..."),
    "error": (500, "InternalServerError", "Internal server error"),
}


@dataclass(frozen=True)
class Call:
    """One AWS call as the proxy sees it."""

    operation: str  # e.g. "GetItem", "UpdateItem", "GetSecretValue"
    table: str | None
    secret: str | None


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees a connection reset, not a clean end."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultyAws:
    """Proxy to `target` (moto); `fail(call)` returns a fault name or None. Counts the calls it saw."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.fail: Callable[[Call], str | None] = lambda call: None
        self.calls: list[tuple[Call, str | None]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                call = _call(self.headers.get("x-amz-target", ""), body)
                fault = proxy.fail(call)
                proxy.calls.append((call, fault))
                if fault in ("reset", "lost"):
                    if fault == "lost":
                        proxy._forward(self.path, body, self.headers)
                    self.close_connection = True
                    _reset(self.connection)
                    return
                if fault is not None:
                    status, code, message = _ERRORS[fault]
                    self._send(status, json.dumps({"__type": code, "message": message}).encode())
                    return
                answer = proxy._forward(self.path, body, self.headers)
                self._send(answer.status_code, answer.content, answer.headers.get("content-type"))

            def _send(self, status: int, payload: bytes, content_type: str | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type or "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyAws:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, path: str, body: bytes, headers: Any) -> httpx.Response:
        kept = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        return httpx.post(self.target + path, content=body, headers=kept, timeout=10)

    def failed(self) -> list[Call]:
        return [call for call, fault in self.calls if fault is not None]


def _call(target: str, body: bytes) -> Call:
    operation = target.rpartition(".")[2]
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    table = payload.get("TableName") if isinstance(payload, dict) else None
    secret = payload.get("SecretId") if isinstance(payload, dict) else None
    return Call(operation, table, secret)


class ResettingPort:
    """A loopback port that accepts every connection and resets it at once (a dead upstream)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            _reset(conn)

    def __enter__(self) -> ResettingPort:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
