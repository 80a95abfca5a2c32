"""Shutdown: streams still running when the grace is nearly over end with an error frame, settled and
logged, before the server gives up on them.

On SIGTERM uvicorn stops accepting connections and waits `--timeout-graceful-shutdown`
(CHATGATE_SHUTDOWN_GRACE_SECONDS) for the requests in flight; then it cancels them. A cancelled stream would
be cut mid-body: no error frame for the client, and no access or metrics line. So chatgate notices the
signal too (its handler runs uvicorn's, then tells the event loop) and, `cutoff` seconds later, ends every
stream still running as a failed stream ends: the contract's error frame (503 `service_unavailable`: retry
the request), the settlement (it charges what was relayed, as for any failed stream), then the end of the
body and the request's log lines, inside the grace. The cutoff leaves the settlement's time budget (and a
second) before the grace ends, or half the grace if that is shorter.

The handler is installed only from the main thread (where the server runs: uvicorn under Lambda Web
Adapter, `chatgate dev`); it is removed with the server's own handlers when the server restores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

_begun: asyncio.Event | None = None
_cutoff: float | None = None


def cutoff_seconds(grace_seconds: float, settlement_budget_seconds: float) -> float:
    """When, after the signal, streams still running are ended."""
    return max(0.0, grace_seconds - min(grace_seconds / 2, settlement_budget_seconds + 1.0))


def install(grace_seconds: float, settlement_budget_seconds: float) -> None:
    """Watch SIGTERM (after whatever handler the server installed) from the running loop."""
    global _begun, _cutoff
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    _begun = asyncio.Event()
    _cutoff = cutoff_seconds(grace_seconds, settlement_budget_seconds)
    previous = signal.getsignal(signal.SIGTERM)
    begun = _begun

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if callable(previous):
            previous(signum, frame)
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(begun.set)

    signal.signal(signal.SIGTERM, on_sigterm)


def begin() -> None:
    """Start the shutdown as the signal would (tests, and servers that stop otherwise)."""
    if _begun is not None:
        _begun.set()


async def streams_must_end() -> None:
    """Return once streams still running must end (never, if no shutdown began)."""
    if _begun is None:
        await asyncio.Event().wait()
        return
    await _begun.wait()
    logger.info("shutdown: streams still running in %.1f s will be ended with an error frame", _cutoff)
    await asyncio.sleep(_cutoff or 0.0)


def reset(*_: Any) -> None:
    """Forget the watch (tests)."""
    global _begun, _cutoff
    _begun = _cutoff = None
