"""Fixtures for the tests that need an exact DynamoDB under concurrency: dynalite, one per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import dynalite as dl
from tests.support.clock import LimiterClock, install_limiter_clock


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A dynalite server for this module; its URL."""
    with dl.dynalite() as url:
        yield url


@pytest.fixture
def table(endpoint: str) -> str:
    """A fresh data table (keys, usage records) in that dynalite."""
    return dl.create_data_table(dl.client(endpoint), f"chatgate-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> LimiterClock:
    """The gateway's rate-limit clock, still at the start of a window until the test moves it."""
    return install_limiter_clock(monkeypatch)
