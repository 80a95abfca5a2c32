"""The Responses API's other clients through the gateway: the seeds' Vercel AI SDK example as written
(default provider; streamText and generateText) and the OpenAI Agents SDK with its default model."""

from __future__ import annotations

import json

import pytest
from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
from agents.models import get_default_model
from openai import AsyncOpenAI

from chatgate.app import create_app
from chatgate.dev.azure_emulator_reply import CAT_POEM
from chatgate.settings import Settings
from tests.conftest import Stack
from tests.support.node import run_node
from tests.support.servers import serve


def test_the_seed_example_streams(gateway: str, stack: Stack) -> None:
    assert run_node("seed_example_stream.mjs", f"{gateway}/openai/eu/v1", stack.key) == CAT_POEM
    [sent] = stack.upstream("eu").requests
    assert sent.path == "/openai/v1/responses" and sent.body["stream"] is True


def test_the_seed_example_with_generate_text(gateway: str, stack: Stack) -> None:
    out = run_node("seed_example_generate.mjs", f"{gateway}/openai/eu/v1", stack.key)
    text, summary = out.rstrip("\n").rsplit("\n", 1)
    assert text == CAT_POEM
    result = json.loads(summary)
    assert result["finishReason"] == "stop" and result["usage"]["outputTokens"] > 0


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_agents_sdk_with_its_default_model(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    set_tracing_disabled(True)  # the SDK would export traces to OpenAI otherwise
    model = get_default_model()
    # The SDK's default model is whatever its release picked; the stack must allow it to serve it.
    monkeypatch.setenv("CHATGATE_MODELS", ",".join((*stack.settings.models, model)))
    with serve(create_app(Settings())) as gateway:
        client = AsyncOpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=stack.key, max_retries=0)
        set_default_openai_client(client, use_for_tracing=False)  # as the SDK's docs say for a proxy
        agent = Agent(name="poet", instructions="You write short poems.")  # no model: the default
        if streamed:
            result = Runner.run_streamed(agent, "Write a short poem about cats.")
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(agent, "Write a short poem about cats.")
        await client.close()
    assert result.final_output == CAT_POEM
    sent = stack.upstream("eu").requests[-1]
    assert sent.path == "/openai/v1/responses" and sent.body["model"] == model
