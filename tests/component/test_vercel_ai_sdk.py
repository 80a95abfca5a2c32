"""The Vercel AI SDK (npm `ai` + `@ai-sdk/openai`) against the gateway on loopback, through a Node script:
`provider.chat(...)` always sends `stream_options: {include_usage: true}`, which chatgate must accept, and
it reads the usage chunk for its `usage` result. Node and node_modules come from `make install` (npm ci)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Stack
from tests.support.node import run_node

ROOT = Path(__file__).resolve().parents[2]
CATS = "Write a short poem about cats."


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    assert node, "Node.js is required for the Vercel AI SDK tests (CI installs node 20)"
    for package in ("ai", "@ai-sdk/openai"):
        assert (ROOT / "node_modules" / package / "package.json").is_file(), (
            f"node_modules/{package} is missing: run `make install` (npm ci)"
        )
    return node


def run_script(node: str, gateway: str, key: str, prompt: str, *flags: str) -> dict[str, Any]:
    """vercel_stream.mjs's JSON result (`node`: the fixture that checked Node and node_modules)."""
    out = run_node("vercel_stream.mjs", f"{gateway}/openai/eu/v1", key, prompt, *flags)
    result: dict[str, Any] = json.loads(out)
    return result


def test_stream_text_and_generate_text(node: str, gateway: str, stack: Stack) -> None:
    expected = openai.OpenAI(
        base_url=f"{gateway}/openai/eu/v1", api_key=stack.key, max_retries=0
    ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": CATS}])
    assert expected.usage is not None

    result = run_script(node, gateway, stack.key, CATS)

    streamed = result["stream"]
    assert streamed["errors"] == []
    assert streamed["text"] == expected.choices[0].message.content
    assert streamed["textParts"] > 10  # it arrived in pieces, not as one block
    assert streamed["finishReason"] == "stop"
    assert streamed["usage"]["inputTokens"] == expected.usage.prompt_tokens
    assert streamed["usage"]["outputTokens"] == expected.usage.completion_tokens
    generated = result["generate"]
    assert generated["text"] == expected.choices[0].message.content
    assert generated["usage"]["totalTokens"] == expected.usage.total_tokens

    stream_request = stack.upstream("eu").requests[1].body
    assert stream_request["stream"] is True
    assert stream_request["stream_options"] == {"include_usage": True}


def test_stream_text_reports_a_mid_stream_failure(node: str, gateway: str, stack: Stack) -> None:
    result = run_script(node, gateway, stack.key, "[[words:6]] [[stream_error_after:3]] go", "--stream-only")

    streamed = result["stream"]
    assert streamed["text"] == "the quick brown"  # what came before the failure
    [error] = streamed["errors"]
    assert "upstream failed while streaming" in error["message"]
    assert streamed["finishReason"] == "error"
