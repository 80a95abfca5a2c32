"""The admin console's page weight and time to interactive on `chatgate dev` (run by hand, not in CI).

    .venv/bin/python bench/console_load.py [--runs 9]

Starts `chatgate dev` (tests/browser/devstack.py) and headless Debian chromium (tests/browser/support.py),
then, interleaved in each run:
1. first load: a fresh browser context (empty cache) opens /console; bytes transferred (headers and
   bodies, as the browser counts them), requests, and the time from navigation start to the key prompt
   taking input (the page's `console:interactive` mark);
2. reload: the same context loads again (the page and modules revalidate with ETags, the chart library
   comes from the cache);
3. signed in: the usage page of the demo workspace, key already in the tab, until its chart and table are
   drawn (the mark comes after the first view, API calls included).
Prints each run and the medians. Loopback only; the machine's load shows in the times, not the bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.devstack import chatgate_dev  # noqa: E402
from tests.browser.support import chromium, new_page  # noqa: E402

ENTRIES = (
    "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
    ".map((e) => e.transferSize)"
)
MARK = "performance.getEntriesByName('console:interactive')[0].startTime"


def measure(page: Any, url: str, ready: str) -> tuple[int, int, float]:
    page.goto(url)
    page.wait_for_selector(ready)
    page.wait_for_function("performance.getEntriesByName('console:interactive').length > 0")
    sizes = page.evaluate(ENTRIES)
    return sum(sizes), len(sizes), float(page.evaluate(MARK))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    results: dict[str, list[tuple[int, int, float]]] = {"first load": [], "reload": [], "signed in": []}
    with chatgate_dev() as dev, chromium() as browser:
        for run in range(args.runs):
            watched = new_page(browser)
            page = watched.page
            results["first load"].append(measure(page, f"{dev.base}/console", "#admin-key"))
            results["reload"].append(measure(page, f"{dev.base}/console", "#admin-key"))
            page.evaluate(f"sessionStorage.setItem('chatgate.adminKey', {dev.admin_key!r})")
            usage = f"{dev.base}/console#/workspaces/demo/usage"
            page.goto("about:blank")
            results["signed in"].append(
                measure(page, usage, "main table.data, main p.muted >> text=No requests")
            )
            page.context.close()
            line = ", ".join(
                f"{name} {r[-1][0]} B / {r[-1][1]} req / {r[-1][2]:.0f} ms" for name, r in results.items()
            )
            print(f"run {run + 1}: {line}", flush=True)
            assert watched.complaints() == [], watched.complaints()
    print("medians:")
    for name, rows in results.items():
        print(
            f"  {name:10} {statistics.median(r[0] for r in rows):8.0f} bytes in "
            f"{statistics.median(r[1] for r in rows):.0f} requests, interactive at "
            f"{statistics.median(r[2] for r in rows):.0f} ms"
        )


if __name__ == "__main__":
    main()
