"""Authenticate: turn an `Authorization: Bearer <key>` header into the calling workspace.

A key looks like `cg_<key_id>_<secret>`. Only its SHA-256 is stored (keys are 256-bit random, so a fast
hash is safe; there is nothing to brute-force). The key id is the lookup key, so a request costs one
GetItem, and a warm instance answers from a small in-memory cache: revoking a key takes effect within
`CHATGATE_KEY_CACHE_SECONDS` (30 s by default) on every instance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chatgate.errors import InvalidApiKey

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

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def usable_at(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the workspace and the key it used."""

    workspace_id: str
    key_id: str


class KeyStore(Protocol):
    """Where keys live (DynamoDB in production: stores/keys_dynamodb.py)."""

    async def get(self, key_id: str) -> ApiKey | None: ...


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key, key_id, key_hash). The key is shown once and never stored."""
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return key, key_id, hash_key(key)


def parse_key_id(key: str) -> str | None:
    """The key id inside a well-formed key, or None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 16 or not secret:
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
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        key = bearer_token(authorization)
        key_id = parse_key_id(key)
        record = await self._lookup(key_id) if key_id else None
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise InvalidApiKey(f"Incorrect API key provided: {_masked(key)}.")
        if not record.usable_at(self._wall_clock()):
            state = "revoked" if record.revoked else "expired"
            raise InvalidApiKey(f"The API key provided has been {state}: {_masked(key)}.")
        return Principal(workspace_id=record.workspace_id, key_id=record.key_id)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        record = await self._store.get(key_id)
        if record is None:
            self._cache.pop(key_id, None)
            return None
        self._cache[key_id] = (now, record)
        self._cache.move_to_end(key_id)
        while len(self._cache) > _CACHE_MAX_ENTRIES:
            self._cache.popitem(last=False)
        return record
