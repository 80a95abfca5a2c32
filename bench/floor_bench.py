"""The gateway against its floor, side by side in one run (run by hand, not in CI).

    .venv/bin/python bench/floor_bench.py [--runs 3] [--requests 300] [--streams 100] [--cold-runs 7]

Every server is its own process, started as production starts it: the gateway is
`python -m uvicorn chatgate.asgi:app` with functions/chat_completions/run.sh's flags, DynamoDB is dynalite
(exact, like DynamoDB) and Secrets Manager is moto's server, both reached through AWS_ENDPOINT_URL_*; the
Azure OpenAI emulator, a bare proxy (uvicorn + one httpx call, no logic) and a bare FastAPI app each run
under uvicorn too. Measured, interleaved request by request in each run:
1. non-streaming latency: direct to the emulator, through the bare proxy, through the gateway; and one bare
   conditional UpdateItem on the same dynalite (the admission write, through boto3 and through
   chatgate's own httpx client). Added latency = gateway - direct (p50, p99).
2. time to first token of a stream: direct, bare proxy, gateway. Added TTFT = gateway - direct.
3. cold start: process start -> first answered chat completion, bare FastAPI vs the gateway (AWS already
   provisioned, same interpreter), interleaved; and what the small-text counter's first count and
   tiktoken's build cost on their own.
4. peak RSS (VmHWM) of a fresh gateway process after 50 concurrent streams.
Prints each run and the medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.floor_stack import Stack, start_stack, uvicorn_process  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write a short poem about cats."}]}
STREAM_BODY = {**BODY, "stream": True}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# --- 1 and 2: warm latency -------------------------------------------------------------------------------


def first_token(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    """ms from sending a streaming request to reading the first frame with content; reads to the end."""
    start = time.perf_counter()
    ttft = None
    with client.stream("POST", url, json=STREAM_BODY, headers=headers) as response:
        response.raise_for_status()
        buffered = b""
        for piece in response.iter_raw():
            if ttft is not None:
                continue
            buffered += piece
            *frames, buffered = buffered.split(b"\n\n")
            if any(frame.startswith(b"data: {") and _has_content(frame[6:]) for frame in frames):
                ttft = ms(start)
    assert ttft is not None
    return ttft


def _has_content(frame: bytes) -> bool:
    try:
        choices = json.loads(frame).get("choices") or []
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in choices)


def warm_run(stack: Stack, requests: int, streams: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    paths = stack.paths()
    update_boto3, update_httpx = stack.bare_update_item()
    with httpx.Client(timeout=30) as client:
        for _ in range(20):  # connections, caches, tokenizer
            for url, headers in paths.values():
                client.post(url, json=BODY, headers=headers).raise_for_status()
                first_token(client, url, headers)
            update_boto3()
            update_httpx()
        for _ in range(requests):
            for name, (url, headers) in paths.items():
                start = time.perf_counter()
                client.post(url, json=BODY, headers=headers).raise_for_status()
                times.setdefault(name, []).append(ms(start))
            for name, call in (("UpdateItem (boto3)", update_boto3), ("UpdateItem (httpx)", update_httpx)):
                start = time.perf_counter()
                call()
                times.setdefault(name, []).append(ms(start))
        for _ in range(streams):
            for name, (url, headers) in paths.items():
                times.setdefault(f"TTFT {name}", []).append(first_token(client, url, headers))
    return times


# --- 3: cold start ---------------------------------------------------------------------------------------


def cold_start(
    stack: Stack,
    app: str,
    app_dir: str | None,
    url_path: str,
    headers: dict[str, str],
    env: dict[str, str] | None = None,
) -> float:
    """ms from starting `python -m uvicorn <app>` to its first 200 to a chat completion."""
    start = time.perf_counter()
    with (
        uvicorn_process(app, {**stack.gateway_env(), **(env or {})}, app_dir=app_dir) as (url, _process),
        httpx.Client(timeout=10) as client,
    ):
        while True:
            try:
                response = client.post(f"{url}{url_path}", json=BODY, headers=headers)
            except httpx.TransportError:
                time.sleep(0.002)
                continue
            if response.status_code == 200:
                return ms(start)
            raise RuntimeError(f"{app}: {response.status_code} {response.text[:300]}")


TOKENIZERS = (
    "import time; t = time.perf_counter(); from chatgate import tokenizer; "
    f"tokenizer.load_small(tokenizer.O200K).encode_ordinary({BODY['messages'][0]['content']!r}); "
    "s = time.perf_counter(); tokenizer.load(tokenizer.O200K); "
    "print((s - t) * 1000, (time.perf_counter() - s) * 1000)"
)


def tokenizer_cost() -> tuple[float, float]:
    """ms, in a fresh process: importing the tokenizer and counting a short prompt with the small-text
    counter (what a cold instance's short prompt needs), then building tiktoken's BPE (what a long prompt
    needs)."""
    out = subprocess.run(
        [sys.executable, "-c", TOKENIZERS], capture_output=True, text=True, check=True, env=os.environ
    )
    small, build = out.stdout.strip().splitlines()[-1].split()
    return float(small), float(build)


# --- 4: peak RSS -----------------------------------------------------------------------------------------


# A 3 KB prompt: above tokens.SMALL_TEXT_BYTES, so tiktoken is built (the memory of a long-prompt workload).
LONG_PROMPT = "[[words:150]] " + "Summarise the following notes in one paragraph, please. " * 55


def peak_rss(stack: Stack, streams: int, prompt: str = "[[words:150]]") -> tuple[float, float]:
    """(MB after one request, peak MB) of a fresh gateway process serving `streams` concurrent streams."""
    with uvicorn_process("chatgate.asgi:app", stack.gateway_env()) as (url, process):
        chat = f"{url}/openai/us/v1/chat/completions"  # region us: the emulator that paces its chunks
        headers = {"authorization": f"Bearer {stack.key}"}
        body = {**STREAM_BODY, "messages": [{"role": "user", "content": prompt}]}
        stack.wait_ready(chat, headers)
        idle = _vm(process.pid, "VmRSS")

        async def one(client: httpx.AsyncClient) -> int:
            async with client.stream("POST", chat, json=body, headers=headers) as response:
                frames = 0
                async for piece in response.aiter_raw():
                    frames += piece.count(b"data: ")
                return frames

        async def many() -> list[int]:
            limits = httpx.Limits(max_connections=streams + 5)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                return await asyncio.gather(*(one(client) for _ in range(streams)))

        frames = asyncio.run(many())
        assert all(count > 100 for count in frames), frames
        return idle, _vm(process.pid, "VmHWM")


def _vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


# --- report ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="non-streaming requests per path per run")
    parser.add_argument("--streams", type=int, default=100, help="streams per path per run (TTFT)")
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--concurrent-streams", type=int, default=50)
    parser.add_argument("--cold-only", action="store_true", help="only the cold starts")
    args = parser.parse_args()

    # Stopped with SIGTERM, unwind like Ctrl-C so that every server this bench started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Production starts from bytecode (the layer and the function package ship CPython 3.13's .pyc), and
    # so do the cold starts here, for both apps (PYTHONDONTWRITEBYTECODE would otherwise leave sources
    # edited since the last compile to be compiled again on every start).
    for folder in (ROOT / "src" / "chatgate", ROOT / "bench" / "apps"):
        compileall.compile_dir(folder, quiet=1)
    print(f"floor bench: Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.runs} runs")
    with ExitStack() as stack_context:
        stack = start_stack(stack_context)
        summary: dict[str, list[float]] = {}
        for run in range(1, 0 if args.cold_only else args.runs + 1):
            times = warm_run(stack, args.requests, args.streams)
            print(f"\nrun {run} (ms)          p50      p99")
            for name, values in times.items():
                p50, p99 = pct(values, 0.5), pct(values, 0.99)
                print(f"{name:<22}{p50:>8.2f}{p99:>9.2f}")
                summary.setdefault(f"{name} p50", []).append(p50)
                summary.setdefault(f"{name} p99", []).append(p99)
            for kind, prefix in (("added latency", ""), ("added TTFT", "TTFT ")):
                for q in ("p50", "p99"):
                    added = pct(times[f"{prefix}gateway"], 0.5 if q == "p50" else 0.99) - pct(
                        times[f"{prefix}direct"], 0.5 if q == "p50" else 0.99
                    )
                    summary.setdefault(f"{kind} {q}", []).append(added)
        bare, gateway = [], []
        key_headers = {"authorization": f"Bearer {stack.key}"}
        chat = "/openai/eu/v1/chat/completions"
        for _ in range(args.cold_runs):
            bare.append(cold_start(stack, "bare_fastapi:app", "bench/apps", chat, {}))
            gateway.append(cold_start(stack, "chatgate.asgi:app", None, chat, key_headers))
        costs = [tokenizer_cost() for _ in range(3)]
        vocabulary = statistics.median(c[0] for c in costs)
        tiktoken_build = statistics.median(c[1] for c in costs)
        idle, peak = peak_rss(stack, args.concurrent_streams)
        long_idle, long_peak = peak_rss(stack, args.concurrent_streams, LONG_PROMPT)
        if args.cold_only:
            print(
                f"cold start: bare FastAPI p50 {statistics.median(bare):.0f} ms, gateway p50 "
                f"{statistics.median(gateway):.0f} ms: "
                f"{statistics.median(gateway) / statistics.median(bare):.2f}x; first short count "
                f"{vocabulary:.0f} ms (tiktoken's build {tiktoken_build:.0f} ms); "
                f"peak RSS {peak:.0f} MB ({idle:.0f} MB after one request); "
                f"with 3 KB prompts (tiktoken built) {long_peak:.0f} MB ({long_idle:.0f} MB)"
            )
            return

    print(f"\nmedians over {args.runs} runs (ms)")
    for name, values in summary.items():
        print(
            f"  {name:<28}{statistics.median(values):>8.2f}   runs: {', '.join(f'{v:.2f}' for v in values)}"
        )
    floor = statistics.median(summary["UpdateItem (boto3) p50"])
    floor_httpx = statistics.median(summary["UpdateItem (httpx) p50"])
    for kind in ("added latency", "added TTFT"):
        added = statistics.median(summary[f"{kind} p50"])
        print(
            f"  {kind} p50 {added:.2f} ms = bare UpdateItem p50 + {added - floor:.2f} ms (boto3 floor "
            f"{floor:.2f}) / + {added - floor_httpx:.2f} ms (httpx floor {floor_httpx:.2f}); "
            "goal <= +1.5 ms: "
            f"{'met' if added - floor <= 1.5 else 'NOT met'}"
        )
    b, g = statistics.median(bare), statistics.median(gateway)
    print(
        f"cold start, {args.cold_runs} each, interleaved (ms): bare FastAPI p50 {b:.0f} "
        f"[{min(bare):.0f}-{max(bare):.0f}], gateway p50 {g:.0f} [{min(gateway):.0f}-{max(gateway):.0f}]: "
        f"{g / b:.2f}x (goal <= 1.5x: {'met' if g <= 1.5 * b else 'NOT met'}); alone, in a fresh process: "
        f"importing the tokenizer and counting a short prompt {vocabulary:.0f} ms, building tiktoken "
        f"{tiktoken_build:.0f} ms (not on a short first prompt's path)"
    )
    print(
        f"RSS of `uvicorn chatgate.asgi:app`: {idle:.0f} MB after its first request, peak {peak:.0f} MB with "
        f"{args.concurrent_streams} concurrent streams "
        f"(goal <= 128 MB: {'met' if peak <= 128 else 'NOT met'}); with 3 KB prompts (tiktoken built): "
        f"{long_idle:.0f} MB after its first request, peak {long_peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
