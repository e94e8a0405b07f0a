"""Small value types shared by several modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .oauth.resources import Resource


class Principal(Protocol):
    """What access rules read of a caller: an ``Identity``, or a cached user."""

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def scopes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified credential belongs to."""

    user_id: str
    username: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    token_id: str
    expires_at: float  # Unix time
    session_id: str | None = None  # the "sid" claim: the login this token belongs to
    cookie_only: bool = False  # a session-cookie token: never accepted as a Bearer token
    issuer: str = ""  # an external issuer's "iss"; empty for our own tokens
    # An OAuth access token's: the resource its "aud" names, and the client it was issued to.
    resource: Resource | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    """A row of the users table, with its group names."""

    id: str
    username: str
    password_hash: str
    disabled: bool
    groups: tuple[str, ...]
    created_at: str
    updated_at: str
