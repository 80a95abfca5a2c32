"""Import cost of chatgate's observability: Powertools Logger and EphemeralMetrics (run by hand).

    .venv/bin/python bench/observability_import.py [--runs 15] [--before-src /tmp/chatgate-before/src]

Each sample is a fresh interpreter. Reported (medians and minimums, ms):
- `import chatgate.asgi` as a whole (what every cold start pays before uvicorn binds), and, with
  `--before-src` (an older `src`, e.g. `git archive 5d7d417 src | tar -x -C /tmp/chatgate-before`), the
  same for that code, interleaved sample by sample;
- the cumulative `-X importtime` of aws_lambda_powertools.logging and aws_lambda_powertools.metrics
  inside `import chatgate.asgi`: Powertools' share of it;
- importing aws_lambda_powertools.tracing after the app: what the Tracer would add (not used).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

POWERTOOLS = ("aws_lambda_powertools.logging", "aws_lambda_powertools.metrics")
TIMED_IMPORT = (
    "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
)
AFTER_APP = "import chatgate.asgi; " + TIMED_IMPORT


def run(code: str, src: str | None = None, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": src} if src else dict(os.environ)
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, check=True, env=env
    )


def app_import_ms(src: str | None) -> float:
    return float(run(TIMED_IMPORT.format(module="chatgate.asgi"), src).stdout.strip().splitlines()[-1])


def powertools_ms() -> float:
    """Cumulative import time of Powertools' logging and metrics packages inside `import chatgate.asgi`."""
    total = 0
    for line in run("import chatgate.asgi", None, "-X", "importtime").stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in POWERTOOLS:
            total += int(parts[1])
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before-src")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"import chatgate.asgi": []}
    if args.before_src:
        rows["import chatgate.asgi (before)"] = []
    for _ in range(args.runs):
        rows["import chatgate.asgi"].append(app_import_ms(None))
        if args.before_src:
            rows["import chatgate.asgi (before)"].append(app_import_ms(args.before_src))
    rows["of which Powertools logging + metrics (cumulative)"] = [powertools_ms() for _ in range(args.runs)]
    rows["+ aws_lambda_powertools.tracing after the app"] = [
        float(run(AFTER_APP.format(module="aws_lambda_powertools.tracing")).stdout.strip())
        for _ in range(args.runs)
    ]
    for name, values in rows.items():
        print(f"{name:52s} median {statistics.median(values):7.1f} ms   min {min(values):7.1f} ms")


if __name__ == "__main__":
    main()
