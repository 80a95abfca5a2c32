"""Import cost of chatgate's observability modules, and of the libraries they replace (run by hand).

    .venv/bin/python bench/observability_import.py [runs]

Each run is a fresh interpreter. Reported (medians, ms):
- chatgate.observability + metrics + tracing: their own import time (-X importtime, self) inside
  `import chatgate.asgi`, i.e. what they add to a cold start;
- aws_lambda_powertools.metrics / .tracing: the time to import them after `chatgate.asgi`, i.e. what
  they would add (the Tracer imports the X-Ray SDK lazily, once a Tracer is created). chatgate no longer
  depends on Powertools: install it (`pip install aws-lambda-powertools`) to measure those rows, else
  they print nan.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

OURS = ("chatgate.observability", "chatgate.metrics", "chatgate.tracing")
AFTER_APP = """
import time, chatgate.asgi
t = time.perf_counter()
try:
    import {module}
except ImportError:
    print("nan")
else:
    print((time.perf_counter() - t) * 1000)
"""


def ours_ms() -> float:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import chatgate.asgi"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in OURS:
            total += int(parts[0])
    return total / 1000


def after_app_ms(module: str) -> float:
    code = AFTER_APP.format(module=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    rows = {
        "chatgate observability modules (self)": [ours_ms() for _ in range(runs)],
        "+ aws_lambda_powertools.metrics": [
            after_app_ms("aws_lambda_powertools.metrics") for _ in range(runs)
        ],
        "+ aws_lambda_powertools.tracing": [
            after_app_ms("aws_lambda_powertools.tracing") for _ in range(runs)
        ],
    }
    for name, values in rows.items():
        print(f"{name:45s} median {statistics.median(values):7.2f} ms   min {min(values):7.2f} ms")


if __name__ == "__main__":
    main()
