"""The gateway at Lambda's CPU share, beside a bare FastAPI + httpx proxy held to the same share (run by hand,
as root, on a machine with the cgroup v1 cpu controller at /sys/fs/cgroup/cpu).

    sudo .venv/bin/python bench/lambda_share.py [--sizes 256,512,1024,1769] [--runs 3] [--requests 100]
        [--streams 50] [--cold-runs 3] [--before-src /tmp/chatgate-before/src]

Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, so a size of M MB gets
M / 1769 of one. Here each size is a child cgroup whose `cpu.cfs_quota_us` is that share of a 100 ms
`cpu.cfs_period_us` (512 MB: 28,943 us, about 0.29 of a CPU), and every process measured is started inside
it: the gateway (`python -m uvicorn chatgate.asgi:app` with run.sh's flags, as Lambda Web Adapter starts
it) and the bare proxy (bench/apps/bare_fastapi_proxy.py), each in a cgroup of its own at the same share.
DynamoDB (dynalite), Secrets Manager (moto) and the Azure emulator run outside, unlimited, as AWS and Azure
would. For each size and run, interleaved app by app (each round starting with the next app):
- cold start: process start -> its first answered chat completion (`--cold-runs` of each, median);
- warm: JSON latency and time to first token of a stream, p50 and p99 (`--requests`, `--streams`);
- peak RSS (VmHWM) of the warm process, and its CPU time per request over the timed requests (JSON and
  streams together: what sizes a container that serves many requests at once).
Reported: medians over the runs, and the gateway / bare proxy ratio of each. With `--before-src` (a plain
export of an older commit's `src`, e.g. `git archive 5d7d417 src | tar -x -C /tmp/chatgate-before`), that
code runs as a third app at the same share, side by side. The load average is printed with each run: the
machine's other work takes CPU from the cgroups too, so compare within a run.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.floor_bench import BODY, _vm, first_token, ms, pct  # noqa: E402
from bench.floor_stack import EMULATOR_KEYS, Stack, direct_url, start_stack, uvicorn_process  # noqa: E402

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
ONE_VCPU_MB = 1769  # Lambda: 1,769 MB of memory is one vCPU
CHAT = "/openai/eu/v1/chat/completions"


def quota_us(memory_mb: int) -> int:
    return round(PERIOD_US * memory_mb / ONE_VCPU_MB)


@contextlib.contextmanager
def cgroup(name: str, memory_mb: int) -> Iterator[Callable[[], None]]:
    """A child cpu cgroup at `memory_mb`'s share; yields a preexec_fn that moves the child into it."""
    path = CPU_CGROUP / name
    path.mkdir(exist_ok=True)
    (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (path / "cpu.cfs_quota_us").write_text(str(quota_us(memory_mb)))

    def enter() -> None:
        (path / "cgroup.procs").write_text(str(os.getpid()))

    try:
        yield enter
    finally:
        deadline = time.monotonic() + 10
        while True:
            try:
                path.rmdir()
                break
            except OSError:  # its last process is still exiting
                if time.monotonic() > deadline:
                    print(f"warning: {path} left behind", file=sys.stderr)
                    break
                time.sleep(0.05)


class App:
    """One app the bench starts in a cgroup: its uvicorn target, environment and the request path."""

    def __init__(self, name: str, target: str, env: dict[str, str], path: str, headers: dict[str, str]):
        self.name, self.target, self.env, self.path, self.headers = name, target, env, path, headers
        self.app_dir = "bench/apps" if not target.startswith("chatgate.") else None


def apps(stack: Stack, before_src: str | None, log_level: str) -> list[App]:
    # The template's level (INFO): the access line is written for every request, as it is on Lambda.
    gateway_env = {**stack.gateway_env(), "CHATGATE_LOG_LEVEL": log_level}
    key = {"authorization": f"Bearer {stack.key}"}
    proxy_env = {
        **gateway_env,
        "BENCH_UPSTREAM": direct_url(stack.emulators["eu"]),
        "BENCH_UPSTREAM_KEY": EMULATOR_KEYS["eu"],
    }
    found = [
        App("bare proxy", "bare_fastapi_proxy:app", proxy_env, "/", {}),
        App("gateway", "chatgate.asgi:app", gateway_env, CHAT, key),
    ]
    if before_src:
        before_env = {**gateway_env, "PYTHONPATH": before_src}
        found.append(App("gateway before", "chatgate.asgi:app", before_env, CHAT, key))
    return found


def rotated(app_list: list[App], i: int) -> list[App]:
    """The apps in turn, starting with a different one each round: none always follows another."""
    shift = i % len(app_list)
    return app_list[shift:] + app_list[:shift]


def cold_start(app: App, enter: Callable[[], None]) -> float:
    """ms from starting the process (inside the cgroup) to its first 200 to a chat completion."""
    start = time.perf_counter()
    with (
        uvicorn_process(app.target, app.env, app_dir=app.app_dir, preexec_fn=enter) as (url, _process),
        httpx.Client(timeout=60) as client,
    ):
        deadline = time.monotonic() + 120
        while True:
            try:
                response = client.post(f"{url}{app.path}", json=BODY, headers=app.headers)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
                continue
            if response.status_code == 200:
                return ms(start)
            raise RuntimeError(f"{app.name}: {response.status_code} {response.text[:300]}")


def warm(
    app_list: list[App], enters: dict[str, Callable[[], None]], requests: int, streams: int
) -> dict[str, dict[str, float]]:
    """Each app warm in its cgroup, requests interleaved app by app: JSON latency and TTFT percentiles, peak
    RSS."""
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as running:
        urls = {}
        for app in app_list:
            url, process = running.enter_context(
                uvicorn_process(
                    app.target, app.env, app_dir=app.app_dir, wait=True, preexec_fn=enters[app.name]
                )
            )
            urls[app.name] = (f"{url}{app.path}", process.pid)
        latency: dict[str, list[float]] = {app.name: [] for app in app_list}
        ttft: dict[str, list[float]] = {app.name: [] for app in app_list}
        with httpx.Client(timeout=60) as client:
            for app in app_list:
                ready_deadline = time.monotonic() + 120
                while True:
                    try:
                        client.post(urls[app.name][0], json=BODY, headers=app.headers).raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > ready_deadline:
                            raise
                        time.sleep(0.01)
            for _ in range(10):  # connections, caches
                for app in app_list:
                    client.post(urls[app.name][0], json=BODY, headers=app.headers).raise_for_status()
                    first_token(client, urls[app.name][0], app.headers)
            cpu_before = {app.name: _cpu_seconds(urls[app.name][1]) for app in app_list}
            for i in range(requests):
                for app in rotated(app_list, i):
                    start = time.perf_counter()
                    client.post(urls[app.name][0], json=BODY, headers=app.headers).raise_for_status()
                    latency[app.name].append(ms(start))
            for i in range(streams):
                for app in rotated(app_list, i):
                    ttft[app.name].append(first_token(client, urls[app.name][0], app.headers))
            cpu = {app.name: _cpu_seconds(urls[app.name][1]) - cpu_before[app.name] for app in app_list}
        for app in app_list:
            results[app.name] = {
                "cpu ms/req": cpu[app.name] * 1000 / (requests + streams),
                "json p50": pct(latency[app.name], 0.5),
                "json p99": pct(latency[app.name], 0.99),
                "ttft p50": pct(ttft[app.name], 0.5),
                "ttft p99": pct(ttft[app.name], 0.99),
                "peak rss MB": _vm(urls[app.name][1], "VmHWM"),
            }
    return results


def one_size(stack: Stack, memory_mb: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    app_list = apps(stack, args.before_src, args.log_level)
    with ExitStack() as groups:
        enters = {
            app.name: groups.enter_context(cgroup(f"chatgate-bench-{os.getpid()}-{i}", memory_mb))
            for i, app in enumerate(app_list)
        }
        colds: dict[str, list[float]] = {app.name: [] for app in app_list}
        for i in range(args.cold_runs):
            for app in rotated(app_list, i):
                colds[app.name].append(cold_start(app, enters[app.name]))
        results = warm(app_list, enters, args.requests, args.streams)
    for app in app_list:
        results[app.name]["cold start"] = statistics.median(colds[app.name])
    return results


METRICS = ("cold start", "json p50", "json p99", "ttft p50", "ttft p99", "peak rss MB", "cpu ms/req")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024,1769", help="memory sizes, MB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100, help="JSON requests per app per size and run")
    parser.add_argument("--streams", type=int, default=50, help="streams per app per size and run (TTFT)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts per app per size and run")
    parser.add_argument("--before-src", help="an older `src` to run beside the gateway, same share")
    parser.add_argument("--log-level", default="INFO", help="the gateways' CHATGATE_LOG_LEVEL")
    args = parser.parse_args()
    if not os.access(CPU_CGROUP / "cgroup.procs", os.W_OK):
        sys.exit(f"needs root and the cgroup v1 cpu controller at {CPU_CGROUP}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Production starts from bytecode (the layer and the function package ship .pyc files): so do these.
    folders = [ROOT / "src" / "chatgate", ROOT / "bench" / "apps"]
    if args.before_src:
        folders.append(Path(args.before_src) / "chatgate")
    for folder in folders:
        compileall.compile_dir(folder, quiet=1)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"lambda share bench: {os.cpu_count()} CPUs, sizes {sizes}, {args.runs} runs, load {_load()}")
    table: dict[tuple[int, str, str], list[float]] = {}
    with ExitStack() as context:
        stack = start_stack(context)
        for run in range(1, args.runs + 1):
            for size in sizes:
                results = one_size(stack, size, args)
                print(f"\nrun {run}, {size} MB (quota {quota_us(size)} us / {PERIOD_US} us), load {_load()}")
                print(f"  {'':<16}" + "".join(f"{m:>13}" for m in METRICS))
                for name, values in results.items():
                    print(f"  {name:<16}" + "".join(f"{values[m]:>13.1f}" for m in METRICS))
                    for metric in METRICS:
                        table.setdefault((size, name, metric), []).append(values[metric])
                sys.stdout.flush()
    names = sorted({name for _, name, _ in table}, key=["bare proxy", "gateway", "gateway before"].index)
    print(f"\nmedians over {args.runs} runs (ms; RSS in MB); ratio = gateway / bare proxy at the same share")
    print("| MB | app | " + " | ".join(METRICS) + " |")
    print("| ---: | --- |" + " ---: |" * len(METRICS))
    for size in sizes:
        for name in names:
            cells = [statistics.median(table[(size, name, m)]) for m in METRICS]
            print(f"| {size} | {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
        for name in names[1:]:
            ratios = [
                statistics.median(table[(size, name, m)]) / statistics.median(table[(size, "bare proxy", m)])
                for m in METRICS
            ]
            print(f"| {size} | {name} / proxy | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    print(f"load at the end: {_load()}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
