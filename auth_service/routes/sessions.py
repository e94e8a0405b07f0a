"""``POST /api/v1/auth/refresh`` and ``POST /api/v1/auth/logout``: the session API."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import audit, users
from ..errors import CredentialError, ErrorCode
from ..logs import client_ip_var, request_id_var
from ..sessions import (
    RefreshRefused,
    SessionGrant,
    revoke_session,
    rotate_refresh_token,
    session_of_refresh_token,
)
from ..tokens import issue_access_token
from ..types import User
from .bodies import read_json_object

log = logging.getLogger(__name__)

REFRESH_COOKIE = "auth_refresh"
REFRESH_PATH = "/api/v1/auth/refresh"
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def token_response(runtime: Any, user: User, grant: SessionGrant) -> JSONResponse:
    """The JSON answer of a login or a refresh: an access token and the next refresh token."""
    token, expires_in = issue_access_token(
        runtime.keys, runtime.token_params, user, session_id=grant.session_id
    )
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": grant.refresh_token,
            "refresh_expires_in": grant.refresh_expires_in,
        },
        headers=_NO_STORE,
    )


def set_refresh_cookie(runtime: Any, response: Response, grant: SessionGrant) -> None:
    """The browser's refresh token: only ever sent to the refresh endpoint."""
    response.set_cookie(
        REFRESH_COOKIE,
        grant.refresh_token,
        max_age=grant.refresh_expires_in,
        path=REFRESH_PATH,
        secure=runtime.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _refused(description: str, code: ErrorCode = ErrorCode.INVALID_GRANT) -> JSONResponse:
    return JSONResponse(
        {"error": code.value, "error_description": description, "request_id": request_id_var.get()},
        status_code=401,
        headers=_NO_STORE,
    )


async def _refresh_token_from(request: Request) -> tuple[str, bool]:
    """The refresh token from the JSON body, or (for browsers) from the refresh cookie."""
    if request.headers.get("content-type") is None and REFRESH_COOKIE in request.cookies:
        return request.cookies[REFRESH_COOKIE], True
    body = await read_json_object(request)
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token or len(token) > 256:
        raise HTTPException(422, "'refresh_token' must be a non-empty string")
    return token, False


async def refresh(request: Request) -> Response:
    """Exchange a refresh token for a new access token and a new refresh token."""
    runtime = request.app.state.runtime
    token, from_cookie = await _refresh_token_from(request)
    client = client_ip_var.get()
    try:
        async with runtime.pool.acquire() as conn:
            grant = await rotate_refresh_token(conn, token, runtime.lifetimes)
    except RefreshRefused as refusal:
        log.info("refresh refused", extra={"reason": refusal.description})
        reuse = refusal.revoked is not None  # the session was revoked for it
        if refusal.revoked is not None:
            runtime.revocations.add(*refusal.revoked)  # here at once; elsewhere by NOTIFY
        await audit.record_event(
            runtime.pool,
            "revocation" if reuse else "refresh",
            "success" if reuse else "failure",
            request_id=request_id_var.get(),
            client_addr=client,
            detail={"reason": refusal.description},
        )
        return _refused(refusal.description)
    user = await users.find_user_by_id(runtime.pool, grant.user_id)
    if user is None or user.disabled:
        return _refused("the account is no longer active")
    await audit.record_event(
        runtime.pool,
        "refresh",
        "success",
        username=user.username,
        request_id=request_id_var.get(),
        client_addr=client,
    )
    response = token_response(runtime, user, grant)
    if from_cookie:
        set_refresh_cookie(runtime, response, grant)
    return response


async def logout(request: Request) -> Response:
    """End the session of the Bearer access token, or of the refresh token in the body."""
    runtime = request.app.state.runtime
    authorization = request.headers.getlist("authorization")
    session_id = username = None
    if authorization:
        try:
            entry, _ = await runtime.authenticator.authenticate([v.encode() for v in authorization])
        except CredentialError as refusal:
            return _refused(refusal.description, refusal.code)
        session_id, username = entry.session_id, entry.user.username
    else:
        token, _ = await _refresh_token_from(request)
        async with runtime.pool.acquire() as conn:
            session_id = await session_of_refresh_token(conn, token)
    if session_id is None:
        return _refused("no session is tied to this credential")
    await end_session(request, session_id, username)
    return JSONResponse({"status": "logged_out"}, headers=_NO_STORE)


async def end_session(request: Request, session_id: str, username: str | None) -> None:
    """Log out: revoke the session, at once on this replica (the others hear of it through
    NOTIFY), and audit it."""
    runtime = request.app.state.runtime
    async with runtime.pool.acquire() as conn:
        held_until = await revoke_session(conn, session_id, "logout", runtime.lifetimes)
    runtime.revocations.add(session_id, held_until)
    await audit.record_event(
        runtime.pool,
        "logout",
        "success",
        username=username,
        request_id=request_id_var.get(),
        client_addr=client_ip_var.get(),
        detail={"session": session_id[:8]},
    )
