"""The fault suite: books that balance under faults, on the platform's terms.

Two `chatgate dev` processes share one dynalite (DynamoDB), moto (Secrets Manager) and one Azure OpenAI
emulator, configured only through the contract's variables. A few hundred mixed requests (JSON, streams
read to the end, abandoned streams, o3-mini, upstream 500s, streams failing mid-body) from five workspaces
run while:

1. dynalite is stopped (SIGSTOP) for longer than a read's retry budget, in the middle of admissions and
   settlements: admissions get no answer (503, released at settlement if applied), settlements outlive
   their budget ("unsettled" lines);
2. one gateway is frozen (SIGSTOP) mid-stream, then resumed;
3. dynalite is stopped again for longer than the settlement budget, shorter than a read's: settlements
   only;
4. the other gateway gets SIGTERM with streams in flight that outlive its grace.

Afterwards the books (usage records, rate-limit counters) are compared request by request with what each
request was charged: Azure's usage as the client saw it (what the emulator billed) for every answer that
carried usage, what the gateway counted for the others (its metrics line), nothing for what was never
admitted. Every difference must be named by an "unsettled" line, and `chatgate ledger replay` must close
them all, once (a second replay applies nothing).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.cli import main
from chatgate.dev.azure_emulator import EmulatorState, start_emulator
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore
from tests.support import dynalite as dl
from tests.support.contract import check_error_body
from tests.support.instances import Instance, chatgate_dev, contract_environment

WORKSPACES = [f"ws{i}" for i in range(5)]
MODELS = ["gpt-4o-mini", "o3-mini"]
MAX_REQUESTS = 320
WORKERS = 16
READ_BUDGET = 5.0  # stores/aws.py READ: an admission's retries


@dataclass
class Sent:
    """One request as its client saw it."""

    kind: str
    workspace: str
    model: str
    via: str
    status: int = 0  # 0: no answer (connection refused: the gateway was shutting down)
    request_id: str | None = None
    admitted: bool = False  # x-ratelimit-* headers on a non-429 answer
    usage: tuple[int, int] | None = None  # Azure's usage, as the client received it
    error_frame: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    streaming: threading.Event = field(default_factory=threading.Event, repr=False)  # first event came


def prompt(kind: str, rng: random.Random) -> str:
    words = rng.randint(5, 40)
    return {
        "upstream_500": "[[server_error]] hello",
        "midstream": f"[[words:{words}]] [[stream_error_after:3]] hello",
        "long_stream": "[[words:3000]] tell me a long story",
    }.get(kind, f"[[words:{words}]] hello {rng.randint(0, 10**6)}")


def send(gw: Instance, key: str, sent: Sent, rng: random.Random) -> Sent:
    stream = sent.kind not in ("json", "upstream_500")
    body: dict[str, Any] = {
        "model": sent.model,
        "messages": [{"role": "user", "content": prompt(sent.kind, rng)}],
        "max_completion_tokens": rng.choice([None, 200, 2000]),
    }
    if body["max_completion_tokens"] is None:
        del body["max_completion_tokens"]
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    url = f"{gw.url}/openai/eu/v1/chat/completions"
    headers = {"authorization": f"Bearer {key}"}
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
            sent.status = response.status_code
            sent.request_id = response.headers.get("x-request-id")
            sent.admitted = "x-ratelimit-limit-requests" in response.headers and response.status_code != 429
            if response.status_code != 200 or not stream:
                raw = response.read()
                if response.status_code != 200:
                    check_error_body(json.loads(raw))
                else:
                    usage = json.loads(raw)["usage"]
                    sent.usage = (usage["prompt_tokens"], usage["completion_tokens"])
                return sent
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                sent.streaming.set()
                if "error" in event:
                    check_error_body(event)
                    sent.error_frame = event["error"]
                elif event.get("usage"):
                    sent.usage = (event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"])
                if sent.kind == "abandon" and event.get("choices"):
                    return sent  # the client leaves after the first chunk
    except httpx.ConnectError:
        sent.notes.append("refused")  # the gateway had stopped accepting connections
    except httpx.TransportError as exc:
        sent.notes.append(type(exc).__name__)
    return sent


def books(client: Any, data_table: str, rl_table: str, day: str) -> dict[tuple[str, str], list[int]]:
    """(workspace, model) -> [usage requests, prompt, completion, counter requests, counter tokens]."""
    found: dict[tuple[str, str], list[int]] = {}
    store = DynamoDBUsageStore(client, data_table)
    for workspace in WORKSPACES:
        for record in asyncio.run(store.records(workspace, day, day)):
            found.setdefault((workspace, record.model), [0] * 5)[:3] = [
                record.requests,
                record.prompt_tokens,
                record.completion_tokens,
            ]
    for page in client.get_paginator("scan").paginate(TableName=rl_table, ConsistentRead=True):
        for item in page["Items"]:
            _, workspace, model, _start = item["pk"]["S"].split("#")
            row = found.setdefault((workspace, model), [0] * 5)
            row[3] += int(item.get("r", {}).get("N", "0"))
            row[4] += int(item.get("t", {}).get("N", "0"))
    return found


def expected_books(sent: list[Sent], charged: dict[str, tuple[int, int]]) -> dict[tuple[str, str], list[int]]:
    expected: dict[tuple[str, str], list[int]] = {}
    for request in sent:
        row = expected.setdefault((request.workspace, request.model), [0] * 5)
        tokens = charged.get(request.request_id or "")
        if tokens is not None:  # settled with usage: a usage record, and these tokens on the counter
            row[0] += 1
            row[1] += tokens[0]
            row[2] += tokens[1]
        if request.admitted:
            row[3] += 1
            row[4] += sum(tokens) if tokens else 0
    return {k: v for k, v in expected.items() if any(v)}


def differences(
    actual: dict[tuple[str, str], list[int]], expected: dict[tuple[str, str], list[int]]
) -> dict[tuple[str, str], list[int]]:
    keys = set(actual) | set(expected)
    diff = {
        k: [a - e for a, e in zip(actual.get(k, [0] * 5), expected.get(k, [0] * 5), strict=True)]
        for k in keys
    }
    return {k: v for k, v in diff.items() if any(v)}


@pytest.fixture
def stack(tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    state = EmulatorState(api_key="azure-key", name="faults")
    state.chunk_delay_s = 0.01
    with dl.dynalite_process() as (endpoint, dynalite), start_emulator(state) as azure:
        client = dl.client(endpoint, attempts=1)
        environment = contract_environment(
            endpoint,
            moto_url,
            azure.url,
            monkeypatch,
            CHATGATE_RPM_LIMIT="100000",
            CHATGATE_TPM_LIMIT="100000000",
            CHATGATE_RATE_WINDOW_SECONDS="3600",
            CHATGATE_SETTLEMENT_BUDGET_SECONDS="1",
            CHATGATE_SHUTDOWN_GRACE_SECONDS="3",
        )
        yield {"environment": environment, "dynalite": dynalite, "client": client, "emulator": state}


def create_key(workspace: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["keys", "create", "--workspace", workspace]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_books_balance_under_faults(
    stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment, dynalite = stack["environment"], stack["dynalite"]
    rng = random.Random(19)
    with (
        chatgate_dev(environment, tmp_path / "a.log") as a,
        chatgate_dev(environment, tmp_path / "b.log") as b,
    ):
        keys = {workspace: create_key(workspace, capsys) for workspace in WORKSPACES}
        day = time.strftime("%Y-%m-%d", time.gmtime())
        faults: list[str] = []
        done = threading.Event()

        def stop(process: Any, seconds: float, name: str) -> None:
            faults.append(f"{name} stopped {seconds:g} s")
            process.send_signal(signal.SIGSTOP)
            time.sleep(seconds)
            process.send_signal(signal.SIGCONT)

        def drive() -> None:
            time.sleep(3)
            stop(dynalite, READ_BUDGET + 1.5, "dynalite (mid-admission and mid-settlement)")
            time.sleep(2)
            stop(a.process, 2.0, "gateway a (mid-stream)")
            time.sleep(3)
            stop(dynalite, 2.5, "dynalite (mid-settlement)")
            time.sleep(3)
            with ThreadPoolExecutor(4) as longs:  # streams that outlive b's grace
                streams = [Sent("long_stream", w, "gpt-4o-mini", "b") for w in WORKSPACES[:4]]
                pending = [
                    longs.submit(send, b, keys[r.workspace], r, random.Random(i))
                    for i, r in enumerate(streams)
                ]
                for stream in streams:  # each has begun streaming before the signal
                    stream.streaming.wait(timeout=30)
                faults.append("gateway b SIGTERM with 4 long streams in flight")
                b.down = True
                b.process.send_signal(signal.SIGTERM)
                long_streams.extend(future.result() for future in pending)
            time.sleep(1)
            done.set()

        long_streams: list[Sent] = []
        driver = threading.Thread(target=drive)
        kinds = ["json", "json", "stream", "stream", "abandon", "midstream", "upstream_500"]
        slots = threading.Semaphore(WORKERS)  # clients wait for their answers: no unbounded queue

        def client(request: Sent, seed: float) -> Sent:
            try:
                via = a if b.down or request.via == "a" else b
                request.via = "a" if via is a else "b"
                return send(via, keys[request.workspace], request, random.Random(seed))
            finally:
                slots.release()

        with ThreadPoolExecutor(WORKERS) as pool:
            driver.start()
            futures = []
            while not done.is_set() and len(futures) < MAX_REQUESTS:
                slots.acquire()
                request = Sent(
                    rng.choice(kinds), rng.choice(WORKSPACES), rng.choice(MODELS), rng.choice("ab")
                )
                futures.append(pool.submit(client, request, rng.random()))
                time.sleep(0.02)
            sent = [future.result() for future in futures]
        driver.join()
        sent += long_streams
        assert b.process.wait(timeout=30) in (0, -signal.SIGTERM)
        time.sleep(1.5)  # a's last settlements (within their 1 s budget)

        lines = a.lines() + b.lines()
        metrics = {line["request_id"]: line for line in lines if "_aws" in line}
        unsettled = [line for line in lines if "unsettled" in line]
        charged = {
            rid: (m["InputTokens"], m["OutputTokens"]) for rid, m in metrics.items() if "InputTokens" in m
        }

        # The client's view: no 500, every error in the contract's shape (checked as received), every
        # answered request has its metrics line, and Azure's usage is what it was charged.
        statuses = Counter(request.status for request in sent)
        assert not any(request.status >= 500 and request.status not in (502, 503) for request in sent), (
            statuses
        )
        answered = [request for request in sent if request.request_id]
        assert all(request.request_id in metrics for request in answered)
        for request in answered:
            if request.usage is not None and request.status == 200:
                assert charged[request.request_id or ""] == request.usage, request
        # b's streams still running when its grace was nearly over ended with the contract's error frame.
        assert long_streams and all(
            r.error_frame and r.error_frame["code"] == "service_unavailable" for r in long_streams
        ), long_streams

        expected = expected_books(sent, charged)
        before = differences(
            books(
                stack["client"],
                environment["CHATGATE_TABLE_NAME"],
                environment["CHATGATE_RATE_LIMIT_TABLE_NAME"],
                day,
            ),
            expected,
        )
        named = {
            (
                record["unsettled"]["workspace_id"],
                write["fields"].get("model") or write["fields"]["key"].split("#")[2],
            )
            for record in unsettled
            for write in record["unsettled"]["writes"]
        }
        assert set(before) <= named, (before, named)  # every difference is named by an unsettled line

        logs = [str(a.log), str(b.log)]
        capsys.readouterr()
        assert main(["ledger", "replay", "--file", *logs, "--json"]) == 0
        replayed = json.loads(capsys.readouterr().out)
        first = replayed["summary"]
        # Honest logs: a write logged "failed" did not happen, so its replay applies it.
        assert all(w["result"] == "applied" for w in replayed["writes"] if w["outcome"] == "failed")
        outcomes = Counter(w["outcome"] for w in replayed["writes"])
        after = differences(
            books(
                stack["client"],
                environment["CHATGATE_TABLE_NAME"],
                environment["CHATGATE_RATE_LIMIT_TABLE_NAME"],
                day,
            ),
            expected,
        )
        assert after == {}, after
        assert main(["ledger", "replay", "--file", *logs, "--json"]) == 0
        second = json.loads(capsys.readouterr().out)["summary"]
        assert second["applied"] == 0 and second["already_applied"] == first["writes"]

        report = {
            "requests": len(sent),
            "statuses": dict(statuses),
            "unanswered": dict(Counter(f"{r.via}:{','.join(r.notes)}" for r in sent if not r.status)),
            "kinds": dict(Counter(request.kind for request in sent)),
            "admitted": sum(request.admitted for request in sent),
            "faults": faults,
            "unsettled_lines": len(unsettled),
            "unsettled_writes": dict(outcomes),
            "differences_before_replay": {f"{k[0]}/{k[1]}": v for k, v in before.items()},
            "replay": first,
            "differences_after_replay": after,
        }
        with capsys.disabled():
            print("\nfault suite:", json.dumps(report))
