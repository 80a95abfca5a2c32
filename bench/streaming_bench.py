"""Streaming overhead: time to first token and per-chunk delay, direct to Azure vs through the gateway.

    .venv/bin/python bench/streaming_bench.py [--streams 100] [--words 30] [--chunk-delay-ms 10]

Three processes, as in production (no GIL shared between them): the Azure OpenAI emulator pacing its chunks
`--chunk-delay-ms` apart, the gateway under uvicorn on loopback (keys and upstream settings in memory, as a
warm instance has them cached: AWS calls are excluded), and this client. The same streaming request is sent
directly to the emulator and through the gateway, interleaved one by one, `--streams` times each.

Measured per stream, on one clock (CLOCK_MONOTONIC is system-wide, so the emulator process stamps when it
writes each event and the client when it has read it):
- TTFT: request sent -> first content chunk read.
- per-chunk delay: emulator wrote a content chunk -> client read it (the relay cost, excluding pacing).
- inter-chunk gap: between consecutive content chunks as the client reads them (pacing + jitter).
Prints p50/p99 of each for both paths and what the gateway adds (difference of the medians).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EMULATOR_KEY = "bench-azure-key"
STAMPS_PATH = "/bench/stamps"


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- child processes ------------------------------------------------------------------------------------


def _serve(app: Any, ready: Any) -> None:
    """Serve `app` with uvicorn (h11, as the emulator and the Lambda use it) on a free loopback port."""
    import socket

    import uvicorn

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on connections accepted from a listener made
    # with it. A bare socket.socket() (proto 0) leaves Nagle on: small SSE writes then wait for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    ready.put(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", http="h11")
    uvicorn.Server(config).run(sockets=[sock])


def run_emulator(ready: Any, chunk_delay_s: float) -> None:
    """The emulator, wrapped to stamp every body write; GET /bench/stamps returns the last stream's."""
    from chatgate.dev.azure_emulator import EmulatorState, create_emulator_app
    from chatgate.dev.azure_emulator_reply import preload_encodings

    preload_encodings()
    emulator = create_emulator_app(EmulatorState(api_key=EMULATOR_KEY, chunk_delay_s=chunk_delay_s))
    stamps: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == STAMPS_PATH:
            body = json.dumps(stamps).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            stamps.clear()

        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                stamps.append(now())
            await send(message)

        await emulator(scope, receive, stamped)

    _serve(app, ready)


def run_gateway(ready: Any, emulator_url: str, key_out: Any) -> None:
    """The gateway with in-memory keys and secrets (a warm instance's caches), real upstream client."""
    from tests.fakes import MemoryKeyStore, MemorySecrets, memory_services

    from chatgate.app import create_app
    from chatgate.settings import Settings
    from chatgate.wiring import http_client

    settings = Settings()
    keys = MemoryKeyStore()
    key_out.put(keys.add("bench"))
    secret = {"endpoint": emulator_url, "api_key": EMULATOR_KEY, "api_version": "2024-10-21"}
    secrets = MemorySecrets({settings.upstream_secret_name(region): secret for region in settings.regions})
    services = memory_services(settings, keys, secrets, http_client(settings))
    _serve(create_app(services=services), ready)


# --- the client -------------------------------------------------------------------------------------------


class Sample:
    """One stream as the client saw it."""

    def __init__(self, ttft: float, delays: list[float], gaps: list[float]) -> None:
        self.ttft = ttft
        self.delays = delays
        self.gaps = gaps


def one_stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]) -> list[float]:
    """Send one streaming request; return (start, arrival of every data frame...) in clock seconds."""
    start = now()
    arrivals = [start]
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        buffered = b""
        for piece in response.iter_raw():
            at = now()
            buffered += piece
            *frames, buffered = buffered.split(b"\n\n")
            arrivals.extend(at for frame in frames if frame.startswith(b"data: "))
    return arrivals


def measure(client: httpx.Client, emulator: str, url: str, headers: dict[str, str], words: int) -> Sample:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[words:{words}]]"}],
    }
    start, *arrivals = one_stream(client, url, headers, body)
    emitted = client.get(f"{emulator}{STAMPS_PATH}").json()
    # Frames, in both paths: prompt filter, role, `words` content chunks, stop, (usage), [DONE].
    content = slice(2, 2 + words)
    read, written = arrivals[content], emitted[content]
    assert len(read) == len(written) == words, (len(read), len(written))
    delays = [r - w for r, w in zip(read, written, strict=True)]
    gaps = [b - a for a, b in itertools.pairwise(read)]
    return Sample(read[0] - start, delays, gaps)


def report(name: str, direct: list[float], gateway: list[float]) -> tuple[float, float]:
    ms = 1000.0
    d50, d99 = percentile(direct, 0.5) * ms, percentile(direct, 0.99) * ms
    g50, g99 = percentile(gateway, 0.5) * ms, percentile(gateway, 0.99) * ms
    print(f"{name:<20}{d50:>10.2f}{d99:>10.2f}{g50:>10.2f}{g99:>10.2f}{g50 - d50:>12.2f}{g99 - d99:>12.2f}")
    return g50 - d50, g99 - d99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100, help="streams per path")
    parser.add_argument("--words", type=int, default=30, help="content chunks per stream")
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0, help="emulator pause between chunks")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    context = mp.get_context("spawn")
    ready, keys = context.Queue(), context.Queue()
    emulator_process = context.Process(
        target=run_emulator, args=(ready, args.chunk_delay_ms / 1000), daemon=True
    )
    emulator_process.start()
    emulator = f"http://127.0.0.1:{ready.get(timeout=60)}"
    gateway_process = context.Process(target=run_gateway, args=(ready, emulator, keys), daemon=True)
    gateway_process.start()
    gateway = f"http://127.0.0.1:{ready.get(timeout=60)}"
    key = keys.get(timeout=60)

    paths = {
        "direct": (
            f"{emulator}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            {"api-key": EMULATOR_KEY},
        ),
        "gateway": (f"{gateway}/openai/eu/v1/chat/completions", {"authorization": f"Bearer {key}"}),
    }
    samples: dict[str, list[Sample]] = {"direct": [], "gateway": []}
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:  # both servers are up once a request through the gateway succeeds
                try:
                    measure(client, emulator, *paths["gateway"], words=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for _ in range(args.warmup):
                for url, headers in paths.values():
                    measure(client, emulator, url, headers, args.words)
            for _ in range(args.streams):
                for name, (url, headers) in paths.items():
                    samples[name].append(measure(client, emulator, url, headers, args.words))
    finally:
        for process in (gateway_process, emulator_process):
            process.terminate()
            process.join(5)

    direct, through = samples["direct"], samples["gateway"]
    print(
        f"streaming: {args.streams} streams per path, interleaved; {args.words} content chunks each, "
        f"{args.chunk_delay_ms:g} ms apart upstream; {platform.python_version()}, {mp.cpu_count()} CPUs"
    )
    print(f"{'(ms)':<20}{'direct':>10}{'':>10}{'gateway':>10}{'':>10}{'added':>12}{'':>12}")
    print(f"{'':<20}{'p50':>10}{'p99':>10}{'p50':>10}{'p99':>10}{'p50':>12}{'p99':>12}")
    ttft, _ = report("time to first token", [s.ttft for s in direct], [s.ttft for s in through])
    delay, _ = report(
        "per-chunk delay", [d for s in direct for d in s.delays], [d for s in through for d in s.delays]
    )
    report("inter-chunk gap", [g for s in direct for g in s.gaps], [g for s in through for g in s.gaps])
    print(
        f"goal: < 5 ms added to the first token ({'met' if ttft < 5 else 'NOT met'}: {ttft:.2f} ms), "
        f"< 1 ms added per chunk at p50 ({'met' if delay < 1 else 'NOT met'}: {delay:.2f} ms)"
    )


if __name__ == "__main__":
    main()
