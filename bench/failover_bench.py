"""What a failover costs: a request that fails over once against the same request served at once, side by
side in one run (run by hand, not in CI; loopback only).

    .venv/bin/python bench/failover_bench.py [--requests 300]

The stack is `chatgate dev`'s own (chatgate.dev.server.prepare: moto for AWS, the EU pool of two emulated
resources, sweden then france), the gateway served by uvicorn in a thread of this process. Interleaved
request by request:
- plain:    the gateway, answered by sweden (first by priority);
- failover: the gateway, `[[rate_limit:sweden]]` in the prompt: sweden answers 429, france answers. Sweden's
            retry-after is set to 0 so that every such request meets it again (no cooldown in the way);
- direct:   the same 429 asked of sweden directly: one upstream round trip that ends in a 429.
The added latency of a failover is failover - plain; it should be about one direct 429, nothing more.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import serve  # noqa: E402


def body(content: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 20}


def timed(
    client: httpx.Client, url: str, payload: dict[str, object], headers: dict[str, str], status: int
) -> float:
    began = time.perf_counter()
    response = client.post(url, json=payload, headers=headers)
    elapsed = (time.perf_counter() - began) * 1000
    assert response.status_code == status, response.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("CHATGATE_RPM_LIMIT", "100000")
    os.environ.setdefault("CHATGATE_TPM_LIMIT", "100000000")
    os.environ.setdefault("CHATGATE_METRICS_ENABLED", "false")

    from chatgate.app import create_app
    from chatgate.dev.server import prepare

    logging.getLogger("werkzeug").disabled = True  # moto's request log
    access = AccessFields()
    logging.getLogger("chatgate.access").addHandler(access)
    logging.getLogger("chatgate.access").setLevel(logging.INFO)

    stack = prepare({})
    sweden = stack.emulators["eu"]
    sweden.state.retry_after_s = 0
    try:
        with serve(create_app(stack.settings)) as gateway, httpx.Client(timeout=30) as client:
            url = f"{gateway}/openai/eu/v1/chat/completions"
            auth = {"authorization": f"Bearer {stack.demo_key}"}
            direct = f"{sweden.url}/openai/v1/chat/completions"
            direct_auth = {"api-key": sweden.state.api_key}
            series: dict[str, list[float]] = {"plain": [], "failover": [], "direct 429": []}
            for i in range(args.requests + 20):  # the first 20 warm every connection pool up
                plain = timed(client, url, body(f"hello {i}"), auth, 200)
                failover = timed(client, url, body(f"hello {i} [[rate_limit:sweden]]"), auth, 200)
                refused = timed(client, direct, body(f"hello {i} [[rate_limit:sweden]]"), direct_auth, 429)
                if i >= 20:
                    series["plain"].append(plain)
                    series["failover"].append(failover)
                    series["direct 429"].append(refused)
            assert len(sweden.state.requests) >= 2 * (args.requests + 20)  # every failover met sweden first
    finally:
        stack.close()
    for name, values in series.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(
            f"{name:>11}: median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   (n={len(values)})"
        )
    added = statistics.median(series["failover"]) - statistics.median(series["plain"])
    paired = statistics.median(f - p for f, p in zip(series["failover"], series["plain"], strict=True))
    throttled = [
        attempt["ms"]
        for fields in access.fields
        for attempt in fields.get("attempts", [])[:-1]
        if attempt["status"] == 429
    ][-args.requests :]
    print(
        f"added by one failover: {added:.2f} ms (difference of the medians), {paired:.2f} ms (median of the "
        f"paired differences); the 429 attempt inside the gateway (access log): "
        f"{statistics.median(throttled):.2f} ms; one direct 429 round trip: "
        f"{statistics.median(series['direct 429']):.2f} ms"
    )


class AccessFields(logging.Handler):
    """Keeps the `fields` of every access log line (their `attempts`)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.fields: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append(getattr(record, "fields", {}))


if __name__ == "__main__":
    main()
