"""How long Azure asks a caller to wait: the headers of its 429s, read into seconds.

Azure OpenAI sends `retry-after` (whole seconds) and `retry-after-ms` on a 429, and `x-ratelimit-reset-
requests` / `x-ratelimit-reset-tokens` (a duration: `1s`, `6m0s`, `20ms`, or plain seconds) on its answers.
The most precise one wins: `retry-after-ms`, then `retry-after` (seconds or an HTTP date), then the later of
the two resets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

# The marks an upstream error carries for the pool (errors.ChatgateError.failover).
THROTTLED = "throttled"
FAILING = "failing"

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?"
)


def duration_seconds(text: str) -> float | None:
    """`1.5`, `2s`, `6m0s`, `1h2m3s`, `20ms` as seconds; None when unreadable or negative."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if value >= 0 and value == value and value != float("inf") else None
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _http_date_seconds(text: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(moment.timestamp() - now, 0.0)


def retry_in(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until Azure serves again, per its headers (None when it said nothing readable)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        value = duration_seconds(millis)
        if value is not None:
            return value / 1000
    after = headers.get("retry-after")
    if after is not None:
        value = duration_seconds(after)
        if value is None:
            value = _http_date_seconds(after, time.time() if now is None else now)
        if value is not None:
            return value
    resets = [
        duration_seconds(headers[name])
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in headers
    ]
    known = [value for value in resets if value is not None]
    return max(known) if known else None
