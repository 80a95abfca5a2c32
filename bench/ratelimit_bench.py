"""Rate-limiter cost against dynalite: DynamoDB calls per request and the latency reserve() adds.

Run by hand from the repository root (after `npm ci`):

    .venv/bin/python -m bench.ratelimit_bench [--requests 1000] [--concurrency 16]

Calls are counted with botocore event hooks on the client: `before-call` (API calls the limiter makes) and
`before-send` (HTTP attempts, retries included). Latency is measured around `await limiter.reserve(...)`
and compared with a bare UpdateItem on the same endpoint, so the difference is the limiter's own overhead
(thread hop, expression building, parsing). dynalite is local and single-threaded, so absolute figures are
not DynamoDB's (single-digit ms in-region); calls per request are the same, except that a refusal costs one
extra GetItem on dynalite, which does not implement ReturnValuesOnConditionCheckFailure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support import dynalite as dl

from chatgate.limits import tokens
from chatgate.limits.ratelimit import Limits, RateLimiter, RateLimitExceeded
from chatgate.stores.ratelimit_dynamodb import DynamoDBCounterStore

TABLE = "chatgate-ratelimits-bench"
BIG = Limits(requests=10**9, tokens=10**12)


class CallCounter:
    """Counts DynamoDB API calls and HTTP attempts made through one client."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.sends = 0
        client.meta.events.register("before-call.dynamodb.*", self._on_call)
        client.meta.events.register("before-send.dynamodb.*", self._on_send)

    def _on_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _on_send(self, **_: Any) -> None:
        self.sends += 1

    def reset(self) -> None:
        self.calls.clear()
        self.sends = 0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(n: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    """Run op(0..n-1) with `concurrency` in flight; latencies in milliseconds."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            await op(i)
            latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


def row(name: str, latencies: list[float], counter: CallCounter, n: int) -> str:
    calls = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(counter.calls.items()))
    return (
        f"| {name} | {calls} | {counter.sends / n:.2f} | "
        f"{statistics.median(latencies):.2f} | {percentile(latencies, 0.99):.2f} |"
    )


async def run(endpoint: str, n: int, concurrency: int) -> list[str]:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 4))
    client = dl.client(endpoint)
    counter = CallCounter(client)
    limiter = RateLimiter(DynamoDBCounterStore(client, TABLE), window_seconds=60)
    lines = [
        "| operation | DynamoDB calls per operation | HTTP sends | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]

    def bare(i: int) -> Awaitable[object]:
        return asyncio.to_thread(
            client.update_item,
            TableName=TABLE,
            Key={"pk": {"S": f"bare-{i % 10}"}},
            UpdateExpression="ADD r :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    for name, conc in (("bare UpdateItem (baseline)", 1), (f"bare UpdateItem x{concurrency}", concurrency)):
        counter.reset()
        lines.append(row(name, await timed(n, conc, bare), counter, n))

    reservations = []

    async def admit(i: int) -> None:
        reservations.append(await limiter.reserve(f"ws-{i % 10}", "gpt-4o", 500, BIG))

    for name, conc in (("reserve, admitted", 1), (f"reserve, admitted x{concurrency}", concurrency)):
        counter.reset()
        lines.append(row(name, await timed(n, conc, admit), counter, n))

    async def reconcile(i: int) -> None:
        await limiter.reconcile(reservations[i], 320)

    counter.reset()
    lines.append(row("reconcile (actual != reserved)", await timed(n, 1, reconcile), counter, n))

    full = Limits(requests=1, tokens=10**9)
    await limiter.reserve("ws-full", "gpt-4o", 1, full)

    async def refuse(i: int) -> None:
        try:
            await limiter.reserve("ws-full", "gpt-4o", 1, full)
        except RateLimitExceeded:
            return
        raise AssertionError("expected a refusal")

    counter.reset()
    lines.append(row("reserve, refused (dynalite: + GetItem)", await timed(n, 1, refuse), counter, n))

    body = {"messages": [{"role": "user", "content": "Explain the sliding window counter. " * 140}]}
    tokens.preload(["gpt-4o"])
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        tokens.count_prompt_tokens("gpt-4o", body)
        samples.append((time.perf_counter() - start) * 1000)
    size = tokens.count_prompt_tokens("gpt-4o", body)
    lines.append(
        f"| count_prompt_tokens, {size}-token prompt | none | 0 | "
        f"{statistics.median(samples):.2f} | {percentile(samples, 0.99):.2f} |"
    )
    return lines


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with dl.dynalite() as endpoint:
        dl.create_rate_limit_table(dl.client(endpoint), TABLE)
        lines = asyncio.run(run(endpoint, args.requests, args.concurrency))
    print(f"{args.requests} operations each, against dynalite")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
