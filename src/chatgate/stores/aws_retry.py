"""How AWS calls are retried (stores/aws.py): one design for reads and writes, as botocore's standard mode.

What is retried: the throttling codes below, the service's transient failures and any 5xx, a 200 that
fails DynamoDB's `x-amz-crc32` or is not JSON, connection errors, broken (reused) connections and read
timeouts. How: at most `RetryPolicy.attempts` tries, full-jitter exponential backoff, within the policy's
time budget. Whether a failed call may have been applied is the caller's to know (`maybe_applied` on the
errors): only a call that never left (no connection) or that the service refused provably was not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

__all__ = ["NOT_SENT", "READ", "THROTTLING", "TRANSIENT", "RetryPolicy", "retryable_answer"]

# botocore's standard mode: the service asked to slow down, so the request was not applied.
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# The service's own transient failures (as botocore's standard mode: these and any 5xx); applied or not.
TRANSIENT = frozenset({"InternalServerError", "InternalFailure", "ServiceUnavailable", "RequestTimeout"})
# No byte of the request can have reached the service.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class RetryPolicy:
    """How one kind of call is retried: at most `attempts` tries, the n-th retry after a pause drawn
    uniformly from [0, min(cap, base * 2^(n-1))] ("full jitter"), every try and pause within `budget`
    seconds of the first (a try still running when the budget ends is abandoned: its outcome is unknown)."""

    attempts: int = 3
    base: float = 0.05
    cap: float = 1.0
    budget: float = 5.0

    def pause(self, retry: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))  # noqa: S311 (jitter)


# Reads and admissions on the request path: botocore standard mode's three attempts, inside the time a
# client waits for its answer to begin.
READ = RetryPolicy()


def retryable_answer(code: str, status: int) -> bool:
    """An error answer worth another attempt: throttling (not applied) or a transient failure (perhaps)."""
    return code in THROTTLING or code in TRANSIENT or status >= 500
