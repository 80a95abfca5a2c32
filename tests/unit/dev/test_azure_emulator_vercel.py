"""The seeds' Vercel AI SDK example (default provider: the Responses API) straight against the emulator's v1
surface: the emulator's response objects and typed events are what the SDK parses. Node and node_modules
come from `make install` (npm ci)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.dev.azure_emulator_reply import CAT_POEM
from tests.support.node import run_node

KEY = "vercel-key"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator(EmulatorState(api_key=KEY, name="vercel-emulator"))
    yield running
    running.stop()


def run(script: str, emulator: RunningEmulator) -> str:
    return run_node(script, f"{emulator.url}/openai/v1", KEY)


def test_the_seed_example_streams_from_the_responses_api(emulator: RunningEmulator) -> None:
    assert run("seed_example_stream.mjs", emulator) == CAT_POEM
    [request] = emulator.state.requests[-1:]
    assert request.path == "/openai/v1/responses" and request.body["stream"] is True


def test_the_seed_example_with_generate_text(emulator: RunningEmulator) -> None:
    text, summary = run("seed_example_generate.mjs", emulator).rstrip("\n").rsplit("\n", 1)
    assert text == CAT_POEM
    result = json.loads(summary)
    assert result["finishReason"] == "stop" and result["usage"]["outputTokens"] > 0
