"""The verified-token cache: bounded, expiring with the tokens, small per entry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from hashlib import sha256

from .types import Identity


@dataclass(frozen=True, slots=True)
class CachedIdentity:
    """A verified identity and the response headers it produces, ready to send."""

    identity: Identity
    headers: tuple[tuple[bytes, bytes], ...]
    valid_until: float  # time.monotonic() deadline


def identity_headers(identity: Identity) -> tuple[tuple[bytes, bytes], ...]:
    """The X-Auth-* headers that tell the upstream who is calling."""
    return (
        (b"x-auth-user", identity.username.encode()),
        (b"x-auth-user-id", identity.user_id.encode()),
        (b"x-auth-groups", ",".join(identity.groups).encode()),
        (b"x-auth-scopes", " ".join(identity.scopes).encode()),
    )


class TokenCache:
    """Verified tokens until their expiry; at most ``max_entries``, oldest evicted first.

    Memory is what bounds the cache, so an entry is kept small:

    - it is keyed by the SHA-256 of the token, 32 bytes instead of the token (some 500
      characters). A hit still means that this very token was verified: another token with
      the same digest cannot be found;
    - a user's tokens share one copy of the user's names, groups and identity headers
      (a user holds several live tokens: one per login and per refresh).

    Tokens are inserted roughly in expiry order, so evicting the oldest entry first is also
    evicting (about) the soonest to expire. An ``OrderedDict`` makes both O(1) under a flood
    of new tokens; a plain dict finds its first key by skipping the slots of deleted ones.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, CachedIdentity] = OrderedDict()
        self._users: dict[str, CachedIdentity] = {}  # user id -> an entry to share with
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> CachedIdentity | None:
        """The cached entry for ``token`` if it has not expired."""
        key = _cache_key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.valid_until <= self._clock():
            del self._entries[key]
            return None
        return entry

    def put(self, token: str, identity: Identity) -> CachedIdentity:
        """Remember a verified identity until its ``exp``."""
        ttl = identity.expires_at - time.time()
        if self.max_entries <= 0 or ttl <= 0:
            return CachedIdentity(identity, identity_headers(identity), self._clock() + ttl)
        entry = self._shared(identity, self._clock() + ttl)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[_cache_key(token)] = entry
        return entry

    def _shared(self, identity: Identity, valid_until: float) -> CachedIdentity:
        """An entry that reuses the strings and headers of the user's previous token, when
        they say the same; the user's first token (or a changed one) becomes the model."""
        model = self._users.get(identity.user_id)
        if model is not None and _same_user(model.identity, identity):
            user = model.identity
            shared = replace(
                identity,
                user_id=user.user_id,
                username=user.username,
                groups=user.groups,
                scopes=user.scopes,
            )
            return CachedIdentity(shared, model.headers, valid_until)
        entry = CachedIdentity(identity, identity_headers(identity), valid_until)
        if len(self._users) >= self.max_entries:
            self._users.clear()  # users whose tokens are gone; sharing starts over
        self._users[identity.user_id] = entry
        return entry

    def clear(self) -> None:
        """Forget everything (after a key change)."""
        self._entries.clear()
        self._users.clear()


def _same_user(a: Identity, b: Identity) -> bool:
    return (a.user_id, a.username, a.groups, a.scopes) == (
        b.user_id,
        b.username,
        b.groups,
        b.scopes,
    )


def _cache_key(token: str) -> bytes:
    return sha256(token.encode()).digest()
