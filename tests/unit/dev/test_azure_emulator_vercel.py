"""The seeds' Vercel AI SDK example (default provider: the Responses API) straight against the emulator's v1
surface: the emulator's response objects and typed events are what the SDK parses. Node and node_modules
come from `make install` (npm ci)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.dev.azure_emulator_reply import CAT_POEM

ROOT = Path(__file__).resolve().parents[3]
KEY = "vercel-key"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator(EmulatorState(api_key=KEY, name="vercel-emulator"))
    yield running
    running.stop()


def run(script: str, emulator: RunningEmulator) -> str:
    node = shutil.which("node")
    assert node, "Node.js is required for the Vercel AI SDK tests"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CHATGATE_BASE_URL": f"{emulator.url}/openai/v1",
        "CHATGATE_API_KEY": KEY,
    }
    done = subprocess.run(
        [node, str(ROOT / "tests" / "js" / script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_seed_example_streams_from_the_responses_api(emulator: RunningEmulator) -> None:
    assert run("seed_example_stream.mjs", emulator) == CAT_POEM
    [request] = emulator.state.requests[-1:]
    assert request.path == "/openai/v1/responses" and request.body["stream"] is True


def test_the_seed_example_with_generate_text(emulator: RunningEmulator) -> None:
    text, summary = run("seed_example_generate.mjs", emulator).rstrip("\n").rsplit("\n", 1)
    assert text == CAT_POEM
    result = json.loads(summary)
    assert result["finishReason"] == "stop" and result["usage"]["outputTokens"] > 0
