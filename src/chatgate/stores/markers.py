"""Per-request markers: what makes a settlement write idempotent without transactions.

Every write that settles a request carries the request's marker (`new_marker()`: 64 random bits as 16 hex
digits, made by the gateway, never taken from the client) as an attribute of the item it changes, under a
condition on that attribute, in the same UpdateItem: DynamoDB applies the counters and the marker together
or not at all. A write sent again (a retry after a lost answer, `chatgate ledger replay`) meets the marker
and changes nothing. dynalite, moto and DynamoDB all evaluate such conditions per item, atomically, so this
runs unchanged on what `chatgate dev`, the tests and production use (dynalite has no TransactWriteItems).

A marker that must stay is one whose write is still in doubt; one known to be applied can go. Markers kept
for a day would grow a busy usage record past DynamoDB's 400 KB item limit (500 requests a minute is
720,000 a day) and make each write cost as many write units as the item has kilobytes, so the instance
that knew a write applied removes its marker with its next write to the same item, once
`HOLD_SECONDS` have passed (long enough that no earlier attempt of that write is still on its way). An item
then holds the markers of a few seconds of traffic per instance, plus those of writes whose outcome was never
known (named by an "unsettled" line, and needed by its replay).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

from chatgate.stores.aws import RetryPolicy

__all__ = ["HOLD_SECONDS", "SETTLE", "Acknowledged", "new_marker"]

# Settlement writes: the client already has its answer; retry harder than a read, within a few seconds
# (the end of the response waits for them: Lambda freezes the sandbox when it ends).
SETTLE = RetryPolicy(attempts=8, base=0.05, cap=1.0, budget=5.0)
# How long a marker known to be applied stays before its removal rides on a later write.
HOLD_SECONDS = 5.0
# Removed by one write at most (each is a name in the UpdateExpression).
_MAX_REMOVALS = 16
# Items tracked at most (least recently written dropped first: their markers simply stay).
_MAX_ITEMS = 4096


def new_marker() -> str:
    """A request's marker: 16 hex digits, random (never the client's x-request-id, which it chooses)."""
    return secrets.token_hex(8)


class Acknowledged:
    """Markers this instance knows were applied, per item, waiting to be removed by a later write."""

    def __init__(self, hold_seconds: float = HOLD_SECONDS) -> None:
        self._hold = hold_seconds
        self._items: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()

    def add(self, item: str, name: str) -> None:
        """The write carrying the marker attribute `name` on `item` is known to be applied."""
        known = self._items.setdefault(item, [])
        if all(name != seen for _, seen in known):  # one REMOVE per name: DynamoDB refuses overlapping paths
            known.append((time.monotonic(), name))
        self._items.move_to_end(item)
        while len(self._items) > _MAX_ITEMS:
            self._items.popitem(last=False)

    def due(self, item: str, writing: str) -> list[str]:
        """Marker attributes of `item` to remove with the next write, which sets `writing` (never among
        them) (taken: `restore` them if the write fails)."""
        known = self._items.get(item)
        if not known:
            return []
        now = time.monotonic()
        due = [name for at, name in known if now - at >= self._hold and name != writing][:_MAX_REMOVALS]
        if due:
            taken = set(due)
            self._items[item] = [(at, name) for at, name in known if name not in taken]
        return due

    def restore(self, item: str, names: list[str]) -> None:
        """The write that was to remove `names` did not (or may not have): keep them for the next."""
        if names:
            known = self._items.setdefault(item, [])
            kept = {name for _, name in known}
            known[:0] = [(0.0, name) for name in names if name not in kept]
