"""Gateway overhead and cold start, measured side by side in one run (run by hand, not in CI).

    .venv/bin/python bench/gateway_bench.py [--requests 400] [--api chat|embeddings] [--cold-runs 7]

1. Added latency per non-streaming request on a warm instance, AWS calls excluded: the same request sent
   directly to the Azure emulator and through the gateway (uvicorn on loopback; keys, upstream settings
   and workspace limits in memory as a warm instance has them cached; the rate limiter's counters in
   memory instead of DynamoDB; prompt tokenization included), interleaved one by one. Reports p50/p99
   of each and the difference of the medians. `--api embeddings`: the same for an embeddings request
   (two short inputs, float vectors) instead of a chat completion.
2. Cold start: a fresh Python process that imports the Lambda handler and answers its first event (AWS on
   moto, upstream on the emulator), from process start to the printed response; and the import alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import MemoryKeyStore, MemorySecrets, memory_services  # noqa: E402
from tests.support.servers import serve  # noqa: E402

from chatgate.app import create_app  # noqa: E402
from chatgate.dev.azure_emulator import EmulatorState, start_emulator  # noqa: E402
from chatgate.settings import Settings  # noqa: E402
from chatgate.wiring import http_client  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write a short poem about cats."}]}
# The API measured: the body, the emulator's path for it (direct), the gateway's path.
APIS = {
    "chat": (
        BODY,
        "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
        "chat/completions",
    ),
    "embeddings": (
        {
            "model": "text-embedding-3-small",
            "input": ["Cats sleep.", "Dogs bark."],
            "encoding_format": "float",
        },
        "/openai/v1/embeddings",
        "embeddings",
    ),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_proxy(upstream_url: str) -> Starlette:
    """The floor any gateway pays: one more loopback hop, uvicorn, and an httpx call upstream, no logic."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    http = http_client(Settings())

    async def forward(request: Request) -> Response:
        upstream = await http.post(upstream_url, content=await request.body(), headers={"api-key": "bench"})
        return Response(upstream.content, media_type="application/json")

    return Starlette(routes=[Route("/", forward, methods=["POST"])])


def added_latency(requests: int, api: str = "chat") -> None:
    body, direct_path, gateway_path = APIS[api]
    emulator = start_emulator(EmulatorState(api_key="bench"))
    settings = Settings(rpm_limit=10**9, tpm_limit=10**12)  # measure the limiter, never hit it
    keys = MemoryKeyStore()
    key = keys.add("bench")
    secrets = MemorySecrets(
        {
            settings.upstream_secret_name(region): {"endpoint": emulator.url, "api_key": "bench"}
            for region in settings.regions
        }
    )
    services = memory_services(settings, keys, secrets, http_client(settings))
    direct_url = f"{emulator.url}{direct_path}"
    paths: dict[str, tuple[str, dict[str, str]]] = {}
    with (
        serve(create_app(services=services)) as gateway,
        serve(bare_proxy(direct_url), lifespan="off") as proxy,
        httpx.Client() as client,
    ):
        paths["direct"] = (direct_url, {"api-key": "bench"})
        paths["bare proxy"] = (f"{proxy}/", {})
        paths["gateway"] = (f"{gateway}/openai/eu/v1/{gateway_path}", {"authorization": f"Bearer {key}"})
        for _ in range(30):  # warm every path (connections, caches, tokenizer)
            for url, headers in paths.values():
                client.post(url, json=body, headers=headers).raise_for_status()
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(requests):
            for name, (url, headers) in paths.items():
                start = time.perf_counter()
                client.post(url, json=body, headers=headers).raise_for_status()
                times[name].append((time.perf_counter() - start) * 1000)
    emulator.stop()
    print(f"non-streaming {api} request, {requests} each, interleaved (ms)")
    print(f"{'path':<12}{'p50':>8}{'p99':>8}")
    for name, values in times.items():
        print(f"{name:<12}{percentile(values, 0.5):>8.2f}{percentile(values, 0.99):>8.2f}")
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"added by the gateway: p50 {median['gateway'] - median['direct']:.2f} ms, of which the extra hop "
        f"(bare proxy) {median['bare proxy'] - median['direct']:.2f} ms and chatgate's own work "
        f"{median['gateway'] - median['bare proxy']:.2f} ms"
    )


COLD = r"""
import json, os, sys, time
t0 = float(os.environ["BENCH_T0"])
from chatgate.lambda_handler import handler
imported = time.time()
from chatgate.cli import invoke_event
event = json.load(open(sys.argv[1]))
result = invoke_event(event, handler)
done = time.time()
print(json.dumps({"status": result["statusCode"], "import_ms": (imported - t0) * 1000,
                  "total_ms": (done - t0) * 1000}))
"""


def cold_start(runs: int) -> None:
    from tests.conftest import EMULATOR_KEYS, seed_stack

    from chatgate.dev import aws

    for name in aws.AWS_ENDPOINT_VARIABLES:
        os.environ.pop(name, None)
    aws.use_local_credentials()
    server, url = aws.start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    emulators = {r: start_emulator(EmulatorState(api_key=k)) for r, k in EMULATOR_KEYS.items()}
    seed_stack(Settings(), emulators)
    event = ROOT / "events" / "chat_completions_success.json"
    imports, totals = [], []
    for _ in range(runs):
        env = {**os.environ, "BENCH_T0": repr(time.time())}
        out = subprocess.run(
            [sys.executable, "-c", COLD, str(event)], env=env, capture_output=True, text=True, check=True
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        assert result["status"] == 200, result
        imports.append(result["import_ms"])
        totals.append(result["total_ms"])
    print(
        f"cold start, {runs} fresh processes (ms): process start -> handler imported p50 "
        f"{statistics.median(imports):.0f}; -> first event answered p50 {statistics.median(totals):.0f}"
    )
    for emulator in emulators.values():
        emulator.stop()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--api", choices=sorted(APIS), default="chat")
    args = parser.parse_args()
    added_latency(args.requests, args.api)
    if args.cold_runs:
        cold_start(args.cold_runs)


if __name__ == "__main__":
    main()
