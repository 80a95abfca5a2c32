"""Whether this much time has passed, for every bound chatgate promises (keep-alive expiry, the key
cache's 30 s revocation bound, the secret and limits caches), robust to a monotonic clock that stood still.

There are public reports of `time.monotonic` not advancing while a Lambda sandbox is frozen between
invocations (CLOCK_MONOTONIC does not count a suspended system; the wall clock is corrected on thaw). A
bound measured on the monotonic clock alone would then stretch by the freeze: a connection idle for minutes
looks idle for seconds, a revoked key lives longer than promised. So the time elapsed since a `Stamp` is
the larger of the monotonic and the wall-clock differences: a wall clock stepped back by NTP cannot shorten
it (the monotonic one still counts), a frozen monotonic clock cannot either (the wall clock counts). A wall
clock stepped forward ends a bound early, which costs one extra read or one new connection, never a broken
promise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


class Stamp(NamedTuple):
    """A moment on both clocks."""

    monotonic: float
    wall: float


@dataclass(frozen=True, slots=True)
class Clock:
    """The two clocks a bound is measured on (injectable: tests move them by hand)."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def now(self) -> Stamp:
        return Stamp(self.monotonic(), self.wall())

    def elapsed(self, since: Stamp, now: Stamp | None = None) -> float:
        """Seconds since `since`: the larger of the two clocks' differences."""
        now = self.now() if now is None else now
        return max(now.monotonic - since.monotonic, now.wall - since.wall)

    def passed(self, since: Stamp, seconds: float, now: Stamp | None = None) -> bool:
        """Whether at least `seconds` have passed since `since`."""
        return self.elapsed(since, now) >= seconds


SYSTEM = Clock()
