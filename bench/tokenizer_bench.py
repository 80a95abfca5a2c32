"""Worst cases of prompt counting: 4 MiB bodies of pathological text, and the cold load of each tokenizer.

Run by hand:  .venv/bin/python bench/tokenizer_bench.py [--repeat 5]

Each case is one user message whose content fills a 4 MiB body (the size cap), counted with
tokens.count_prompt_tokens as the gateway does. Figures are medians of wall time and of the counting
thread's CPU time (the latter is what a busy shared machine distorts least). Loads run in fresh
interpreters: a load happens once per process.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from chatgate.limits import tokenizer, tokens

CAP = 4 * 1024 * 1024


def _fill(unit: Callable[[random.Random], str]) -> str:
    rng, parts, size = random.Random(7), [], 0
    while size < CAP - 200:
        piece = unit(rng)
        size += len(json.dumps(piece, ensure_ascii=False).encode()) - 2
        parts.append(piece)
    return "".join(parts)


def _trim(text: str) -> str:
    """Cut the text so the JSON body stays within the cap."""
    while len(json.dumps(_body(text), ensure_ascii=False).encode()) > CAP:
        text = text[: int(len(text) * 0.98)]
    return text


def _body(text: str) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


CASES: dict[str, Callable[[random.Random], str]] = {
    "one letter run (a...)": lambda rng: "a" * 4096,
    "random lowercase, no spaces": lambda rng: "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=4096)),
    "unbroken CJK (random ideographs)": lambda rng: "".join(
        chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(2048)
    ),
    "digits": lambda rng: "".join(rng.choices("0123456789", k=4096)),
    "hex": lambda rng: rng.randbytes(2048).hex(),
    "base64": lambda rng: base64.b64encode(rng.randbytes(3072)).decode(),
    "spaces": lambda rng: " " * 4096,
    "punctuation (!)": lambda rng: "!" * 4096,
    "emoji": lambda rng: "\U0001f600" * 1024,
    "English prose": lambda rng: "The quick brown fox jumps over the lazy dog, again and again. " * 64,
}


def measure(model: str, text: str, repeat: int, stop_above: int | None = None) -> tuple[float, float, int]:
    body = _body(text)
    walls, cpus, count = [], [], 0
    for _ in range(repeat):
        tokenizer._raw_counts.clear()  # each run as the first request with this text
        wall, cpu = time.perf_counter(), time.thread_time()
        count = tokens.count_prompt_tokens(model, body, stop_above=stop_above)
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), count


def load_times(name: str, repeat: int) -> tuple[float, float]:
    code = (
        "import time; from chatgate import tokenizer; w = time.perf_counter(); c = time.process_time(); "
        f"tokenizer.load({name!r}); print(time.perf_counter() - w, time.process_time() - c)"
    )
    walls, cpus = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        wall, cpu = map(float, out.split())
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--stop-above", type=int, default=60_000, help="the default TPM limit")
    args = parser.parse_args()

    print("| tokenizer load (fresh process) | wall ms | CPU ms |\n| --- | ---: | ---: |")
    for name in ("o200k_base", "cl100k_base"):
        wall, cpu = load_times(name, args.repeat)
        print(f"| {name} | {wall * 1000:.0f} | {cpu * 1000:.0f} |")

    tokens.preload([args.model])
    print(
        f"\n| 4 MiB body, {args.model} | characters | tokens counted | wall ms | CPU ms "
        f"| CPU ms, stopping above {args.stop_above:,} |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, unit in CASES.items():
        text = _trim(_fill(unit))
        wall, cpu, count = measure(args.model, text, args.repeat)
        _, stopped, _ = measure(args.model, text, args.repeat, stop_above=args.stop_above)
        print(
            f"| {label} | {len(text):,} | {count:,} | {wall * 1000:.0f} | {cpu * 1000:.0f} "
            f"| {stopped * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()
