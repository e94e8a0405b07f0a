"""Token grants: a code becomes an OAuth session; a refresh token rotates; revocation.

An OAuth session is a session (``sessions.py``): its refresh tokens rotate with reuse
detection, and revoking its ``sid`` ends every access token issued in it on every replica.
It is bound to the client it was issued to, the resource (the access tokens' ``aud``) and the
scopes granted: a refresh must come from that client, for that resource, for no more scopes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..db import Connection
from ..sessions import (
    Lifetimes,
    OAuthBinding,
    RefreshRefused,
    SessionGrant,
    binding_of_refresh_token,
    revoke_session,
    rotate_refresh_token,
    session_of_refresh_token,
    start_session,
)
from .clients import Client, touch_client
from .codes import ReusedCode, record_session, redeem_code
from .errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from .urls import canonical_url

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OAuthGrant:
    """What the token endpoint answers with: a session (and its refresh token), the user,
    the resource and scopes; ``flow_id`` for the code exchange's correlation."""

    session: SessionGrant
    resource: str
    scopes: tuple[str, ...]
    flow_id: str | None = None


@dataclass(frozen=True, slots=True)
class CodeReplay:
    """A used code came back: the session it became is revoked (until ``held_until``)."""

    flow_id: str
    session_id: str | None
    held_until: float | None = None


def _resource_parameter(value: str | None) -> str | None:
    """``resource`` as sent, canonicalised (clients may render it differently)."""
    if value is None:
        return None
    canonical = canonical_url(value)
    if canonical is None:
        raise InvalidTarget("resource is not an absolute https URL without a fragment")
    return canonical


async def exchange_code(
    conn: Connection,
    client: Client,
    form: dict[str, str],
    lifetimes: Lifetimes,
) -> OAuthGrant | CodeReplay:
    """The ``authorization_code`` grant; ``CodeReplay`` when the code was used before (its
    session is then revoked), an ``OAuthError`` for any other refusal."""
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("the client did not register the authorization_code grant")
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    resource = _resource_parameter(form.get("resource"))
    async with conn.transaction():
        redeemed = await redeem_code(
            conn,
            code,
            client_id=client.client_id,
            redirect_uri=form.get("redirect_uri"),
            verifier=form.get("code_verifier"),
            resource=resource,
        )
        if isinstance(redeemed, ReusedCode):
            replay = CodeReplay(redeemed.flow_id, redeemed.session_id)
        else:
            disabled = await conn.fetchval(
                "SELECT disabled FROM users WHERE id = $1::uuid", redeemed.user_id
            )
            if disabled is not False:  # disabled since, or gone: no session (rolled back)
                raise InvalidGrant("the account is disabled")
            binding = OAuthBinding(
                client.client_id, redeemed.resource, redeemed.scopes, redeemed.flow_id
            )
            session = await start_session(conn, redeemed.user_id, lifetimes, oauth=binding)
            await record_session(conn, redeemed.code_hash, session.session_id)
            await touch_client(conn, client.client_id)
            return OAuthGrant(session, redeemed.resource, redeemed.scopes, redeemed.flow_id)
    # Outside the transaction that locked the code: the revocation must be committed.
    if replay.session_id is None:
        return replay
    held = await revoke_session(conn, replay.session_id, "authorization code reuse", lifetimes)
    return CodeReplay(replay.flow_id, replay.session_id, held)


async def refresh(
    conn: Connection, client: Client, form: dict[str, str], lifetimes: Lifetimes
) -> OAuthGrant:
    """The ``refresh_token`` grant: rotation with reuse detection, bound to the client, the
    resource and the scopes of the session. Checks come before the rotation, so a refused
    request leaves the token usable."""
    if "refresh_token" not in client.grant_types:
        raise UnauthorizedClient("the client did not register the refresh_token grant")
    token = form.get("refresh_token")
    if not token:
        raise InvalidRequest("refresh_token is required")
    binding = await binding_of_refresh_token(conn, token)
    if binding is None or binding.client_id != client.client_id:
        raise InvalidGrant("unknown refresh token")
    resource = _resource_parameter(form.get("resource"))
    if resource is not None and resource != binding.resource:
        raise InvalidTarget("resource is not the one this refresh token was issued for")
    scope = form.get("scope")
    scopes = binding.scopes
    if scope is not None and scope.strip():
        asked = tuple(dict.fromkeys(s for s in scope.split(" ") if s))
        if not set(asked) <= set(binding.scopes):
            raise InvalidScope("a refresh cannot widen the scopes granted")
        scopes = asked
    try:
        session = await rotate_refresh_token(conn, token, lifetimes, client_id=client.client_id)
    except RefreshRefused as refused:
        raise InvalidGrant(refused.description, refused.revoked) from refused
    await touch_client(conn, client.client_id)
    return OAuthGrant(session, binding.resource, scopes)


async def revoke_refresh_token(
    conn: Connection, client: Client, token: str, lifetimes: Lifetimes
) -> str | None:
    """Revoke the session of a refresh token the client holds; the session id, or None
    when the token is not one of this client's (RFC 7009 §2.2: answered 200 all the same)."""
    binding = await binding_of_refresh_token(conn, token)
    if binding is None or binding.client_id != client.client_id:
        return None
    session_id = await session_of_refresh_token(conn, token)
    if session_id is None:
        return None
    await revoke_session(conn, session_id, "oauth token revoked", lifetimes)
    return session_id


async def revoke_session_of_client(
    conn: Connection, client: Client, session_id: str, lifetimes: Lifetimes
) -> bool:
    """Revoke a session (an access token's ``sid``) if it is this client's."""
    owner = await conn.fetchval("SELECT client_id FROM sessions WHERE id = $1", session_id)
    if owner != client.client_id:
        return False
    await revoke_session(conn, session_id, "oauth token revoked", lifetimes)
    return True
