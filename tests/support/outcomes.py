"""Capture what reconciliation is told about each stream (the StreamOutcome handed to `settle`), by
wrapping the callback the route gives EventStreamResponse, whatever the route does with it."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from chatgate.gateway.settlement import StreamOutcome
from chatgate.gateway.streaming import EventStreamResponse


class Outcomes:
    """The StreamOutcomes handed to `settle`, in the order the streams ended (any thread); each is
    put after the pipeline's settlement (reconcile, usage record) has returned."""

    def __init__(self) -> None:
        self._queue: queue.Queue[StreamOutcome] = queue.Queue()

    def put(self, outcome: StreamOutcome) -> None:
        self._queue.put(outcome)

    def next(self, timeout: float = 3.0) -> StreamOutcome:
        return self._queue.get(timeout=timeout)


def record_outcomes(monkeypatch: pytest.MonkeyPatch) -> Outcomes:
    recorded = Outcomes()
    original = EventStreamResponse.__init__

    def recording_init(self: EventStreamResponse, *args: Any, settle: Any, **kwargs: Any) -> None:
        async def settle_and_record(outcome: StreamOutcome) -> None:
            try:
                await settle(outcome)
            finally:
                recorded.put(outcome)

        original(self, *args, settle=settle_and_record, **kwargs)

    monkeypatch.setattr(EventStreamResponse, "__init__", recording_init)
    return recorded
