"""The OpenAI Agents SDK with its default model (the Responses API) straight against the emulator's v1
surface: what the SDK sends for its default model is answered in shapes it reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.models import get_default_model
from openai import AsyncOpenAI

from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator

KEY = "agents-key"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI
    running = start_emulator(EmulatorState(api_key=KEY, name="agents-emulator"))
    yield running
    running.stop()


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agent_runs_on_the_default_model(emulator: RunningEmulator, streamed: bool) -> None:
    client = AsyncOpenAI(base_url=f"{emulator.url}/openai/v1", api_key=KEY, max_retries=0)
    model = OpenAIResponsesModel(model=get_default_model(), openai_client=client)
    agent = Agent(name="poet", instructions="You write short poems.", model=model)
    if streamed:
        result = Runner.run_streamed(agent, "Write a short poem about cats.")
        async for _ in result.stream_events():
            pass
    else:
        result = await Runner.run(agent, "Write a short poem about cats.")
    assert "Whiskers" in str(result.final_output)
    request = emulator.state.requests[-1]
    assert request.path == "/openai/v1/responses" and request.body["model"] == get_default_model()
    assert request.body["instructions"] == "You write short poems."
    await client.close()
