"""The limiter's clock in tests: still at the start of a window, so a busy machine can never push a test's
requests into the next window; it moves only when the test says so."""

from __future__ import annotations

import time

import pytest

from chatgate.limits import ratelimit


class LimiterClock:
    """The limiter's clock: still at the start of a window until `run()` lets it follow real time."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.start = start
        self.running_since: float | None = None

    def __call__(self) -> float:
        if self.running_since is None:
            return self.start
        return self.start + time.monotonic() - self.running_since

    def run(self) -> None:
        self.running_since = time.monotonic()


def install_limiter_clock(monkeypatch: pytest.MonkeyPatch) -> LimiterClock:
    """Every RateLimiter built from settings (the gateway's) uses the returned clock."""
    test_clock = LimiterClock()
    from_settings = ratelimit.RateLimiter.from_settings.__func__  # type: ignore[attr-defined]

    def with_test_clock(cls: type, store: object, settings: object, *, clock: object = None) -> object:
        return from_settings(cls, store, settings, clock=test_clock)

    monkeypatch.setattr(ratelimit.RateLimiter, "from_settings", classmethod(with_test_clock))
    return test_clock
