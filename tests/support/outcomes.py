"""Capture what reconciliation is told about each stream (the StreamOutcome handed to `on_finish`), by
wrapping the callback the route gives EventStreamResponse, whatever the route does with it."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from chatgate.streaming import EventStreamResponse, StreamOutcome


class Outcomes:
    """The StreamOutcomes handed to `on_finish`, in the order the streams ended (any thread); each is
    put after the route's own `on_finish` (reconcile, usage record) has returned."""

    def __init__(self) -> None:
        self._queue: queue.Queue[StreamOutcome] = queue.Queue()

    def put(self, outcome: StreamOutcome) -> None:
        self._queue.put(outcome)

    def next(self, timeout: float = 3.0) -> StreamOutcome:
        return self._queue.get(timeout=timeout)


def record_outcomes(monkeypatch: pytest.MonkeyPatch) -> Outcomes:
    recorded = Outcomes()
    original = EventStreamResponse.__init__

    def recording_init(self: EventStreamResponse, *args: Any, on_finish: Any, **kwargs: Any) -> None:
        async def on_finish_and_record(outcome: StreamOutcome) -> None:
            try:
                await on_finish(outcome)
            finally:
                recorded.put(outcome)

        original(self, *args, on_finish=on_finish_and_record, **kwargs)

    monkeypatch.setattr(EventStreamResponse, "__init__", recording_init)
    return recorded
