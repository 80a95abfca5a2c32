"""Authenticate: turn an `Authorization: Bearer <key>` header into the calling workspace.

A key looks like `cg_<key_id>_<secret>`. Only its SHA-256 is stored (keys are 256-bit random, so a fast
hash is safe; there is nothing to brute-force). The key id is the lookup key, so a request costs one
GetItem, and a warm instance answers from a small in-memory cache: revoking a key takes effect within
`CHATGATE_KEY_CACHE_SECONDS` (30 s by default) on every instance.

Unknown key ids are cached too, briefly (`CHATGATE_KEY_NEGATIVE_CACHE_SECONDS`, 5 s by default; at most
10,000 ids, least recently seen dropped first), and concurrent lookups of one id share one read: a client
hammering with a wrong, deleted or made-up key costs one GetItem per id per instance per 5 s, not one per
request. A key created after its id was looked up works within those 5 s (ids are random, so in practice a
new key's id was never looked up and it works at once). A store failure is never cached: it is a 503.

A key's last use is recorded cheaply: at most once per key per `CHATGATE_KEY_LAST_USED_INTERVAL_SECONDS`
(5 minutes by default) per instance, skipped when the stored record already shows a use that recent, and
written when the request is settled (chatgate.gateway.settlement: concurrently with its other writes, before
its
response ends, never on the path to the first byte) with a conditional UpdateItem that only moves
`last_used_at` forward past the interval, so instances racing for the same key write once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from chatgate.clock import Clock, Stamp
from chatgate.errors import InvalidApiKey
from chatgate.gateway.background import BackgroundWrites

logger = logging.getLogger(__name__)

KEY_PREFIX = "cg"
_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the key itself: its hash)."""

    key_id: str
    workspace_id: str
    key_hash: str
    name: str = ""
    created_at: int = 0
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None
    # When the key's workspace was archived (its keys stop working), as read with the key.
    workspace_archived_at: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def usable_at(self, now: float) -> bool:
        return (
            not self.revoked
            and self.workspace_archived_at is None
            and (self.expires_at is None or now < self.expires_at)
        )

    def state_at(self, now: float) -> str:
        """ "active", or why the key no longer works: "revoked", "archived" (its workspace), "expired"."""
        if self.revoked:
            return "revoked"
        if self.workspace_archived_at is not None:
            return "archived"
        return "active" if self.usable_at(now) else "expired"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the workspace and the key it used (and, when due, the time of this use, to be
    recorded as the key's last use when the request is settled)."""

    workspace_id: str
    key_id: str
    use_to_record: int | None = None


class KeyStore(Protocol):
    """Where keys live (DynamoDB in production: stores/keys_dynamodb.py)."""

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
        """Set the key's last_used_at to `now` if it is missing or older than `older_than`; True if
        written. Must not create a key that does not exist."""
        ...


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: str = KEY_PREFIX) -> tuple[str, str, str]:
    """A fresh key: (key, key_id, key_hash). The key is shown once and never stored. `kind` is its
    prefix: `cg` for workspace keys, `cga` for admin keys (chatgate.admin.admin_keys)."""
    key_id = secrets.token_hex(8)
    key = f"{kind}_{key_id}_{secrets.token_urlsafe(32)}"
    return key, key_id, hash_key(key)


def parse_key_id(key: str, kind: str = KEY_PREFIX) -> str | None:
    """The key id inside a well-formed key of that kind, or None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != kind or len(key_id) != 16 or not secret:
        return None
    if not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id


def bearer_token(authorization: str | None) -> str:
    """The key from an Authorization header, or InvalidApiKey saying what is wrong."""
    if not authorization:
        raise InvalidApiKey(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidApiKey(
            "The Authorization header must use Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    return token


def _masked(key: str) -> str:
    return f"{key[:7]}...{key[-4:]}" if len(key) > 16 else "***"


class Authenticator:
    """Looks keys up in a KeyStore, with a bounded per-instance cache of positive answers."""

    def __init__(
        self,
        store: KeyStore,
        *,
        cache_seconds: float = 30.0,
        negative_cache_seconds: float = 5.0,
        last_used_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        kind: str = KEY_PREFIX,
    ) -> None:
        self._store = store
        self._kind = kind  # the keys' prefix: cg (workspace keys) or cga (admin keys, chatgate.admin)
        self._cache_seconds = cache_seconds
        self._last_used_interval = last_used_interval
        # The caches' bounds (the 30 s revocation promise) on both clocks: see chatgate.clock.
        self._clock = Clock(monotonic=clock, wall=wall_clock)
        self._wall_clock = wall_clock
        self._cache: OrderedDict[str, tuple[Stamp, ApiKey]] = OrderedDict()
        self._negative_seconds = negative_cache_seconds
        # key id -> when the store last said it has no such key
        self._unknown: OrderedDict[str, Stamp] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[ApiKey | None]] = {}
        # key id -> the latest use this instance knows is recorded (wall clock seconds)
        self._recorded_use: OrderedDict[str, float] = OrderedDict()
        self._writes = BackgroundWrites()

    async def authenticate(self, authorization: str | None) -> Principal:
        key = bearer_token(authorization)
        key_id = parse_key_id(key, self._kind)
        record = await self._lookup(key_id) if key_id else None
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise InvalidApiKey(f"Incorrect API key provided: {_masked(key)}.")
        state = record.state_at(self._wall_clock())
        if state == "archived":
            raise InvalidApiKey(f"The API key provided belongs to an archived project: {_masked(key)}.")
        if state != "active":
            raise InvalidApiKey(f"The API key provided has been {state}: {_masked(key)}.")
        return Principal(
            workspace_id=record.workspace_id, key_id=record.key_id, use_to_record=self._use_due(record)
        )

    def record_use(self, caller: Principal) -> Awaitable[None] | None:
        """The write recording the caller's use as its key's last use, if one is due (else None). It never
        raises, and completes even if whoever awaits it is cancelled."""
        if caller.use_to_record is None:
            return None
        return self._writes.run(self._record_use(caller.key_id, caller.use_to_record))

    async def drain(self) -> None:
        """Wait for last-used writes still in flight (at shutdown, or in tests)."""
        await self._writes.drain()

    def _use_due(self, record: ApiKey) -> int | None:
        """Now, if no use within the interval is on record (this instance then takes the write on)."""
        now = self._wall_clock()
        known = max(self._recorded_use.get(record.key_id, 0.0), float(record.last_used_at or 0))
        if now - known < self._last_used_interval:
            return None
        self._recorded_use[record.key_id] = now
        self._recorded_use.move_to_end(record.key_id)
        while len(self._recorded_use) > _CACHE_MAX_ENTRIES:
            self._recorded_use.popitem(last=False)
        return int(now)

    async def _record_use(self, key_id: str, now: int) -> None:
        try:
            await self._store.touch(key_id, now, older_than=int(now - self._last_used_interval) + 1)
        except Exception as exc:  # best effort: the request has been served already
            logger.warning("recording the last use of key %s did not complete: %s", key_id, exc)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = self._clock.now()
        cached = self._cache.get(key_id)
        if cached is not None and not self._clock.passed(cached[0], self._cache_seconds, now):
            return cached[1]
        missing_since = self._unknown.get(key_id)
        if missing_since is not None and not self._clock.passed(missing_since, self._negative_seconds, now):
            return None
        read = self._inflight.get(key_id)
        if read is None:  # the first request for this id reads it; concurrent ones share that read
            read = self._inflight[key_id] = asyncio.ensure_future(self._store.get(key_id))
            read.add_done_callback(lambda done: self._read_done(key_id, done))
        record = await asyncio.shield(read)  # a cancelled caller does not cancel the others' read
        return self._remember(key_id, now, record)

    def _read_done(self, key_id: str, read: asyncio.Future[ApiKey | None]) -> None:
        self._inflight.pop(key_id, None)
        if not read.cancelled():
            read.exception()  # marks a failure as seen even if every caller went away

    def _remember(self, key_id: str, now: Stamp, record: ApiKey | None) -> ApiKey | None:
        if record is None:
            self._cache.pop(key_id, None)
            self._unknown[key_id] = now
            self._unknown.move_to_end(key_id)
            while len(self._unknown) > _CACHE_MAX_ENTRIES:
                self._unknown.popitem(last=False)
            return None
        self._unknown.pop(key_id, None)
        self._cache[key_id] = (now, record)
        self._cache.move_to_end(key_id)
        while len(self._cache) > _CACHE_MAX_ENTRIES:
            self._cache.popitem(last=False)
        return record
