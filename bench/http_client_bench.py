"""One loopback POST: httpx.AsyncClient on its default transport (httpcore on anyio), httpx.AsyncClient on
chatgate.upstream.transport, and chatgate.upstream.transport.Client (what the gateway uses: httpx's requests
and responses
straight onto that transport).

    .venv/bin/python bench/http_client_bench.py [--calls 3000]

The server is a minimal HTTP/1.1 responder in the same process (a DynamoDB-sized request, a 2-byte JSON
answer), so what is measured is the client's own cost per call (wall-clock medians, and process CPU a call,
the server's share included in every row). Interleaved call by call on uvloop, as the
gateway runs; medians printed. Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chatgate.upstream.transport import Client, Transport

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}"
BODY = json.dumps({"TableName": "chatgate-ratelimits", "Key": {"pk": {"S": "ws#model#minute"}}}).encode()
HEADERS = {
    "content-type": "application/x-amz-json-1.0",
    "x-amz-target": "DynamoDB_20120810.UpdateItem",
    "authorization": "AWS4-HMAC-SHA256 " + "x" * 180,
}


async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(calls: int) -> None:
    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    timeout = httpx.Timeout(5, connect=2)
    default = httpx.AsyncClient(trust_env=False, timeout=timeout)
    lean = httpx.AsyncClient(trust_env=False, timeout=timeout, transport=Transport())
    direct = Client(Transport(), timeout)

    async def through(client: httpx.AsyncClient | Client) -> None:
        (await client.post(url, content=BODY, headers=HEADERS)).json()

    ways = {
        "httpx, default transport": lambda: through(default),
        "httpx, chatgate.upstream.transport": lambda: through(lean),
        "chatgate.upstream.transport.Client": lambda: through(direct),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    cpu = dict.fromkeys(ways, 0.0)  # process CPU seconds (the in-process server's share included in each)
    for _ in range(200):
        for call in ways.values():
            await call()
    for _ in range(calls):
        for name, call in ways.items():
            start, started_cpu = time.perf_counter(), time.process_time()
            await call()
            cpu[name] += time.process_time() - started_cpu
            times[name].append((time.perf_counter() - start) * 1e6)
    for name, values in times.items():
        print(
            f"{name:<30}p50 {statistics.median(values):6.0f} us   "
            f"p99 {sorted(values)[int(0.99 * len(values))]:6.0f} us   "
            f"CPU {cpu[name] / calls * 1e6:5.0f} us a call"
        )
    await default.aclose()
    await lean.aclose()
    await direct.aclose()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    uvloop.run(main(parser.parse_args().calls))
