"""What settling before the end adds to a JSON response, measured where the client sees it.

Run by hand from the repository root (after `npm ci`):

    .venv/bin/python -m bench.settle_bench [--requests 300] [--runs 3]

The gateway (uvicorn, in a thread) runs on dynalite (DynamoDB) and moto (Secrets Manager) with the Azure
emulator upstream. A JSON answer is written chunked: the client receives the whole JSON body, then the
settlement (reconcile + usage record [+ key last use], concurrently) runs, then the body's terminating
chunk arrives. For each request the client notes when the JSON bytes arrived and when the body ended: the
difference is what settling adds for a client that waits for the end of the body (every SDK does). A bare
UpdateItem on the same dynalite is measured in the same run for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import httpx
from tests.support import dynalite as dl
from tests.support.servers import serve

from chatgate.app import create_app
from chatgate.cli import create_key
from chatgate.dev import aws
from chatgate.dev.azure_emulator import EmulatorState, start_emulator
from chatgate.settings import Settings

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bare_update_ms(endpoint: str, table: str, n: int) -> list[float]:
    client = dl.client(endpoint)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        client.update_item(
            TableName=table,
            Key={"pk": {"S": f"bench#{i % 10}"}},
            UpdateExpression="ADD t :t",
            ExpressionAttributeValues={":t": {"N": "1"}},
        )
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    server, moto_url = aws.start_moto()
    aws.use_local_credentials()
    with dl.dynalite() as endpoint, start_emulator(EmulatorState(api_key="k")) as emulator:
        client = dl.client(endpoint)
        suffix = uuid.uuid4().hex[:6]
        os.environ.update(
            AWS_ENDPOINT_URL_DYNAMODB=endpoint,
            AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_url,
            CHATGATE_TABLE_NAME=dl.create_data_table(client, f"data-{suffix}"),
            CHATGATE_RATE_LIMIT_TABLE_NAME=dl.create_rate_limit_table(client, f"rl-{suffix}"),
            CHATGATE_RPM_LIMIT="1000000",
            CHATGATE_TPM_LIMIT="1000000000",
        )
        settings = Settings()
        import boto3

        for region in settings.regions:
            aws.put_secret(
                boto3.client("secretsmanager"),
                settings.upstream_secret_name(region),
                {"endpoint": emulator.url, "api_key": "k"},
            )
        key = create_key(settings, "bench", "bench")
        url_headers = {"authorization": f"Bearer {key}"}
        medians: list[tuple[float, float, float, float]] = []
        with serve(create_app(settings)) as gateway, httpx.Client(timeout=10) as http:
            url = f"{gateway}/openai/eu/v1/chat/completions"
            for _ in range(20):  # warm caches and connections
                http.post(url, json=BODY, headers=url_headers).raise_for_status()
            for run in range(args.runs):
                added, total = [], []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    with http.stream("POST", url, json=BODY, headers=url_headers) as response:
                        chunks = response.iter_raw()
                        next(chunks)  # the whole JSON body (one chunk)
                        json_at = time.perf_counter()
                        for _rest in chunks:
                            pass
                        ended_at = time.perf_counter()
                    added.append((ended_at - json_at) * 1000)
                    total.append((ended_at - started) * 1000)
                bare = bare_update_ms(endpoint, os.environ["CHATGATE_RATE_LIMIT_TABLE_NAME"], args.requests)
                row = (
                    statistics.median(added),
                    percentile(added, 0.99),
                    statistics.median(total),
                    statistics.median(bare),
                )
                medians.append(row)
                print(
                    f"run {run + 1}: settle adds p50 {row[0]:.2f} ms (p99 {row[1]:.2f}); "
                    f"whole request p50 {row[2]:.2f} ms; bare UpdateItem p50 {row[3]:.2f} ms"
                )
        print(
            "median of runs: settle adds p50 "
            f"{statistics.median(r[0] for r in medians):.2f} ms, bare UpdateItem p50 "
            f"{statistics.median(r[3] for r in medians):.2f} ms"
        )
    server.stop()


if __name__ == "__main__":
    main()
