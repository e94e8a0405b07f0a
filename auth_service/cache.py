"""The verified-token cache: bounded, expiring with the tokens, small per entry."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from hashlib import sha256
from typing import TYPE_CHECKING

from .types import Identity

if TYPE_CHECKING:
    from .oauth.resources import Resource

# The identity headers that tell the upstream who is calling, in the order they are sent:
# the one list of their names. Validate sends every one of them on every 200 (empty where
# unknown), and the proxy configurations and their tests are checked against it.
IDENTITY_HEADERS: tuple[bytes, ...] = (
    b"x-auth-user",
    b"x-auth-user-id",
    b"x-auth-groups",
    b"x-auth-scopes",
    b"x-auth-issuer",  # empty for our own tokens: upstreams key on issuer + user id
)
USER_HEADER, USER_ID_HEADER, GROUPS_HEADER, SCOPES_HEADER, ISSUER_HEADER = IDENTITY_HEADERS


class CachedUser:
    """Who a cached token belongs to: what the access rules read and the identity headers'
    values, encoded once. A user's tokens share one (a user holds several live tokens: one
    per login and per refresh)."""

    __slots__ = (
        "groups",
        "groups_value",
        "issuer_value",
        "name_value",
        "scopes",
        "scopes_value",
        "user_id_value",
    )

    def __init__(self, identity: Identity) -> None:
        self.groups = identity.groups
        self.scopes = identity.scopes
        self.name_value = identity.username.encode()
        self.user_id_value = identity.user_id.encode()
        self.groups_value = ",".join(identity.groups).encode()
        self.scopes_value = " ".join(identity.scopes).encode()
        self.issuer_value = identity.issuer.encode()

    @property
    def username(self) -> str:
        return self.name_value.decode()

    def same_as(self, identity: Identity) -> bool:
        """Whether ``identity`` says the same about the user as this entry."""
        return (
            self.groups == identity.groups
            and self.scopes == identity.scopes
            and self.name_value == identity.username.encode()
            and self.issuer_value == identity.issuer.encode()
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The identity headers, in the order of ``IDENTITY_HEADERS``, built for one response
        (a few tuples: cheaper than keeping them per entry)."""
        return [
            (USER_HEADER, self.name_value),
            (USER_ID_HEADER, self.user_id_value),
            (GROUPS_HEADER, self.groups_value),
            (SCOPES_HEADER, self.scopes_value),
            (ISSUER_HEADER, self.issuer_value),
        ]


class CachedIdentity:
    """A verified token: its user, its session (for revocation), its deadline, whether it
    is a session-cookie token (accepted from the cookie only), and the resource of an OAuth
    access token (which validate checks on every request: a hit is no exception)."""

    __slots__ = ("cookie_only", "resource", "session_id", "user", "valid_until")

    def __init__(
        self,
        user: CachedUser,
        session_id: str | None,
        valid_until: float,
        cookie_only: bool = False,
        resource: Resource | None = None,
    ) -> None:
        self.user = user
        self.session_id = session_id
        self.valid_until = valid_until  # time.monotonic() deadline
        self.cookie_only = cookie_only
        self.resource = resource


class TokenCache:
    """Verified tokens until their expiry; at most ``max_entries``, oldest evicted first.

    Memory is what bounds the cache, so an entry keeps only what validate needs:

    - it is keyed by the SHA-256 of the token, 32 bytes instead of the token (some 500
      characters). A hit still means that this very token was verified: another token with
      the same digest cannot be found;
    - the token's own claims (``jti``, ``exp``) are not kept, only its session and deadline;
    - a user's tokens share one ``CachedUser``; the headers are built per response.

    Tokens are inserted roughly in expiry order, so evicting the oldest entry first is also
    evicting (about) the soonest to expire. The order is a deque of keys beside a plain dict:
    both O(1) under a flood of new tokens, at 8 bytes an entry where an ``OrderedDict`` takes
    53 (a plain dict alone would find its first key by skipping the slots of deleted ones).
    The deque may still hold keys that have left the dict (expired ones) or hold a key twice
    (two requests verified the same token at once); the bound applies to the deque, so the
    dict stays within it, and such a key only makes an entry leave a little early.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, CachedIdentity] = {}
        self._order: deque[bytes] = deque()  # the keys, oldest first
        self._users: dict[bytes, CachedUser] = {}  # user id -> the user's shared entry
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
        now = self._clock()
        valid_until = now + identity.expires_at - time.time()
        if self.max_entries <= 0 or valid_until <= now:
            return CachedIdentity(
                CachedUser(identity),
                identity.session_id,
                valid_until,
                identity.cookie_only,
                identity.resource,
            )
        entry = CachedIdentity(
            self._user(identity),
            identity.session_id,
            valid_until,
            identity.cookie_only,
            identity.resource,
        )
        entries, order = self._entries, self._order
        while len(order) >= self.max_entries:
            entries.pop(order.popleft(), None)
        key = _cache_key(token)
        entries[key] = entry
        order.append(key)
        return entry

    def _user(self, identity: Identity) -> CachedUser:
        """The user's shared entry when it says the same; the user's first token (or a
        changed one) makes a new one."""
        # Two issuers may use one subject id for two people: the key names the issuer too.
        key = identity.user_id.encode()
        if identity.issuer:
            key = identity.issuer.encode() + b" " + key
        user = self._users.get(key)
        if user is not None and user.same_as(identity):
            return user
        user = CachedUser(identity)
        if len(self._users) >= self.max_entries:
            self._users.clear()  # users whose tokens are gone; sharing starts over
        self._users[key] = user
        return user

    def clear(self) -> None:
        """Forget everything (after a key change)."""
        self._entries.clear()
        self._order.clear()
        self._users.clear()


def _cache_key(token: str) -> bytes:
    return sha256(token.encode()).digest()
