"""Run one of tests/js/ under Node.js against an OpenAI-compatible base URL (the gateway, or the emulator)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_node(script: str, base_url: str, key: str, *args: str) -> str:
    """The script's stdout; the test fails with its stderr if it exits non-zero."""
    node = shutil.which("node")
    assert node, "Node.js is required for the Vercel AI SDK tests"
    env = {"PATH": os.environ.get("PATH", ""), "CHATGATE_BASE_URL": base_url, "CHATGATE_API_KEY": key}
    done = subprocess.run(
        [node, str(ROOT / "tests" / "js" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
