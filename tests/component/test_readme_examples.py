"""The README's three client examples (curl, the OpenAI SDK, the Vercel AI SDK with its default provider),
run as written against the gateway: only the base URL http://127.0.0.1:8000 becomes the test gateway's and
KEY the test key."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from chatgate.dev.azure_emulator_reply import CAT_POEM
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
README_BASE = "http://127.0.0.1:8000"


def examples() -> dict[str, str]:
    """The first curl, OpenAI SDK and Vercel AI SDK code blocks after '## Quick start'."""
    text = (ROOT / "README.md").read_text()
    quick = text[text.index("## Quick start") :]
    marks = {"sh": "curl ", "python": "OpenAI(", "js": "createOpenAI("}
    found: dict[str, str] = {}
    for language, code in re.findall(r"```(sh|python|js)\n(.*?)```", quick, re.S):
        if README_BASE in code and marks[language] in code and language not in found:
            found[language] = code
    assert set(found) == {"sh", "python", "js"}, found
    return found


def test_curl_example(gateway: str, stack: Stack) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for the README's curl example")
    code = examples()["sh"].replace(README_BASE, gateway)
    done = subprocess.run(
        ["bash", "-c", code],
        env={"PATH": os.environ["PATH"], "KEY": stack.key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"object":"chat.completion"' in done.stdout.replace(" ", "")


def test_openai_sdk_example(gateway: str, stack: Stack) -> None:
    code = examples()["python"].replace(README_BASE, gateway)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"KEY": stack.key})
    assert printed.getvalue().strip() == CAT_POEM


def test_vercel_ai_sdk_example(gateway: str, stack: Stack) -> None:
    node = shutil.which("node")
    assert node, "Node.js is required for the Vercel AI SDK example"
    code = examples()["js"].replace(README_BASE, gateway)
    script = ROOT / "tests" / "js" / f".readme-example-{uuid.uuid4().hex}.mjs"
    script.write_text(f"const KEY = {stack.key!r};\n{code}")
    try:
        done = subprocess.run(
            [node, str(script)],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout == CAT_POEM
    assert stack.upstream("eu").requests[-1].path == "/openai/v1/responses"  # the default provider
