"""`chatgate dev` from a clean environment: embedded AWS, emulated Azure, a demo key, the seeds' examples,
and the metrics lines and the readable log lines it prints for that traffic."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai

from tests.support.emf import emf_records, server_timing

SEED_BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short poem about cats."},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chatgate_dev_serves_the_seed_examples(tmp_path: object) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "CHATGATE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", "dev", "--port", str(port)],
        env={**env, "CHATGATE_LOG_FORMAT": "console"},  # as on a terminal (here stdout is a pipe)
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        key = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("Demo key"):
                key = process.stdout.readline().strip()
                break
        assert key and key.startswith("cg_"), "".join(lines)
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)

        # The seeds' curl example.
        response = httpx.post(
            f"{base}/openai/eu/v1/chat/completions",
            json=SEED_BODY,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"].startswith("gpt-4o-mini")

        # The seeds' OpenAI SDK example.
        client = openai.OpenAI(base_url=f"{base}/openai/eu/v1", api_key=key)
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Write a short poem about cats."}]
        )
        assert completion.choices[0].message.content

        # Embeddings from the emulator, as the SDK asks for them (LangChain and LlamaIndex call the same).
        vectors = client.embeddings.create(model="text-embedding-3-small", input=["cats", "dogs"])
        assert [len(item.embedding) for item in vectors.data] == [1536, 1536]

        # What it printed for that traffic, and for a stream, an error and a request named by API Gateway.
        output = lines[:]
        reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
        reader.start()
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=SEED_BODY["messages"], stream=True
        ) as streamed:
            assert set(server_timing(streamed.headers["server-timing"])) == {"gateway", "upstream"}
            list(streamed.parse())
        assert httpx.post(f"{base}/openai/eu/v1/chat/completions", json={}).status_code == 401
        context = {"x-amzn-request-context": '{"requestId": "6f1c3a2b-9d8e-4f70-a1b2-c3d4e5f60718"}'}
        named = httpx.post(
            f"{base}/openai/us/v1/chat/completions",
            json=SEED_BODY,
            headers={"Authorization": f"Bearer {key}", **context},
        )
        assert named.headers["x-request-id"] == "6f1c3a2b-9d8e-4f70-a1b2-c3d4e5f60718"
        while len(emf_records("".join(output))) < 6 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        records = emf_records("".join(output))
        # (a stream's line is written after its client has [DONE], so it may follow the next request's)
        assert sorted((r["Region"], r["status"], r["stream"]) for r in records) == [
            ("eu", 200, False),
            ("eu", 200, False),
            ("eu", 200, False),
            ("eu", 200, True),
            ("eu", 401, False),
            ("us", 200, False),
        ]
        assert response.json()["usage"]["completion_tokens"] == records[0]["OutputTokens"]
        assert all(r["Workspace"] == "demo" and r["InputTokens"] > 0 for r in records if r["status"] == 200)
        [named_line] = [r for r in records if r["Region"] == "us"]
        assert named_line["request_id"] == "6f1c3a2b-9d8e-4f70-a1b2-c3d4e5f60718"
        # The console format: `12:00:01.234 INFO chatgate.access POST /path 200 3.1ms request_id=... k=v`
        access = [line.split() for line in output if " INFO chatgate.access " in line]
        assert access and not any(line.startswith("{") for line in output if "chatgate.access" in line)
        pairs = [dict(word.split("=", 1) for word in words if "=" in word) for words in access]
        [named_access] = [p for p in pairs if p["request_id"] == "6f1c3a2b-9d8e-4f70-a1b2-c3d4e5f60718"]
        assert named_access["upstream_request_id"] == named_line["upstream_request_id"]
        assert named_access["status"] == "200" and named_access["workspace"] == "demo"
    finally:
        process.terminate()
        process.wait(timeout=20)
