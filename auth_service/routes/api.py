"""The JSON auth API: ``POST /api/v1/auth/login``, ``/refresh`` and ``/logout``.

Bodies are checked by ``bodies.JSONBodyRoute`` (size, content type, a JSON object), then
validated by FastAPI against ``schemas``; the sign-in and sign-out themselves are
``login.attempt_login`` and ``login.end_session``, shared with the browser forms.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from .. import audit, users
from ..devices import DEVICE_COOKIE
from ..errors import CredentialError, ErrorCode, LoginOverloaded, LoginThrottled
from ..login import attempt_login, end_session
from ..logs import client_ip_var
from ..metrics import LOGIN_ATTEMPTS
from ..runtime import Runtime
from ..sessions import (
    RefreshRefused,
    SessionGrant,
    rotate_refresh_token,
    session_of_refresh_token,
    start_session,
)
from ..tokens import issue_access_token
from ..types import User
from .bodies import NOT_JSON, JSONBodyRoute
from .cookies import REFRESH_COOKIE, REFRESH_PATH, set_device_cookie, set_refresh_cookie
from .dependencies import RuntimeDep
from .errors import error_response
from .overload import DESCRIPTION as OVERLOADED
from .schemas import (
    NO_STORE,
    Credentials,
    LoggedOut,
    RefreshTokenBody,
    Throttled,
    Tokens,
    refusal,
)

log = logging.getLogger(__name__)

LOGIN_PATH = "/api/v1/auth/login"
LOGOUT_PATH = "/api/v1/auth/logout"
_BEARER_OR_NOTHING: dict[str, Any] = {"security": [{"bearer": []}, {}]}

# Every body refusal the JSON API can answer with, whatever the route.
_BODY_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: refusal("the body is not a JSON object, or has characters that cannot be stored"),
    413: refusal("the body is larger than 8192 bytes"),
    415: refusal("the body is not application/json"),
    422: refusal("a field is missing, of the wrong type, empty or too long"),
    503: refusal("the database is unavailable"),
}

router = APIRouter(route_class=JSONBodyRoute, tags=["auth API"])


def _tokens(runtime: Runtime, user: User, grant: SessionGrant) -> JSONResponse:
    """The JSON answer of a login or a refresh: an access token and the next refresh token."""
    token, expires_in = issue_access_token(
        runtime.keys, runtime.token_params, user, session_id=grant.session_id
    )
    answer = Tokens(
        access_token=token,
        expires_in=expires_in,
        refresh_token=grant.refresh_token,
        refresh_expires_in=grant.refresh_expires_in,
    )
    return JSONResponse(answer.model_dump(), headers=NO_STORE)


def _refused(description: str, code: ErrorCode = ErrorCode.INVALID_GRANT) -> JSONResponse:
    return error_response(code, description, 401, headers=NO_STORE)


class _LoginRoute(JSONBodyRoute):
    """The login counts every request it refuses unread in ``auth_login_attempts_total``."""

    def refused(self) -> None:
        LOGIN_ATTEMPTS.labels("invalid_request").inc()


async def login_json(
    body: Credentials,
    runtime: RuntimeDep,
    device: Annotated[str | None, Cookie(alias=DEVICE_COOKIE)] = None,
) -> Response:
    """Verify a username and password: 200 with a Bearer token, or the one 401 for an
    unknown user, a wrong password and a disabled account alike (the same bytes)."""
    try:
        signed_in = await attempt_login(
            runtime.pool,
            runtime.passwords,
            runtime.throttle,
            runtime.csrf_key,
            body.username,
            body.password,
            client_ip=client_ip_var.get(),
            device_token=device,
        )
    except LoginThrottled as throttled:
        return error_response(
            ErrorCode.TOO_MANY_ATTEMPTS,
            "too many failed attempts; try again later",
            429,
            headers={"retry-after": str(throttled.retry_after)},
            retry_after=throttled.retry_after,
        )
    except LoginOverloaded as overloaded:
        # Usually answered before the framework (``overload.py``); here when the queue fills
        # while this attempt reads the database, or the wait runs out.
        return error_response(
            ErrorCode.SERVICE_UNAVAILABLE,
            OVERLOADED,
            503,
            headers={"retry-after": str(overloaded.retry_after)},
            retry_after=overloaded.retry_after,
        )
    if signed_in is None:
        return error_response(
            ErrorCode.INVALID_CREDENTIALS,
            "invalid username or password",
            401,
            same_for_everyone=True,
        )
    async with runtime.pool.acquire() as conn:
        grant = await start_session(conn, signed_in.user.id, runtime.lifetimes)
    response = _tokens(runtime, signed_in.user, grant)
    set_device_cookie(runtime.settings, response, signed_in.device_token, LOGIN_PATH)
    return response


router.add_api_route(
    LOGIN_PATH,
    login_json,
    methods=["POST"],
    route_class_override=_LoginRoute,
    response_model=Tokens,
    responses={
        **_BODY_REFUSALS,
        401: refusal("invalid username or password"),
        429: refusal(
            "too many failed attempts for this account, address or device",
            model=Throttled,
            headers={"Retry-After": "seconds to wait before the next attempt"},
        ),
        503: refusal(
            "more logins at once than the password-hashing threads can serve within "
            "AUTH_LOGIN_QUEUE_WAIT_SECONDS",
            model=Throttled,
            headers={"Retry-After": "seconds to wait before the next attempt"},
        ),
    },
)


@router.post(
    REFRESH_PATH,
    response_model=Tokens,
    responses={**_BODY_REFUSALS, 401: refusal("the refresh token is refused")},
)
async def refresh(
    runtime: RuntimeDep,
    body: RefreshTokenBody | None = None,
    cookie: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
) -> Response:
    """Exchange a refresh token (in the body, or for a browser in the refresh cookie, with
    no body) for a new access token and a new refresh token."""
    if body is not None:
        token, from_cookie = body.refresh_token, False
    elif cookie is not None:
        token, from_cookie = cookie, True
    else:
        raise HTTPException(415, NOT_JSON)
    try:
        async with runtime.pool.acquire() as conn:
            grant = await rotate_refresh_token(conn, token, runtime.lifetimes)
    except RefreshRefused as refused:
        log.info("refresh refused", extra={"reason": refused.description})
        reuse = refused.revoked is not None  # the session was revoked for it
        if refused.revoked is not None:
            runtime.revocations.add(*refused.revoked)  # here at once; elsewhere by NOTIFY
        await audit.record_event(
            runtime.pool,
            "revocation" if reuse else "refresh",
            "success" if reuse else "failure",
            detail={"reason": refused.description},
        )
        return _refused(refused.description)
    user = await users.find_user_by_id(runtime.pool, grant.user_id)
    if user is None or user.disabled:
        return _refused("the account is no longer active")
    await audit.record_event(
        runtime.pool,
        "refresh",
        "success",
        username=user.username,
    )
    response = _tokens(runtime, user, grant)
    if from_cookie:
        set_refresh_cookie(runtime.settings, response, grant)
    return response


@router.post(
    LOGOUT_PATH,
    response_model=LoggedOut,
    responses={
        **_BODY_REFUSALS,
        401: refusal("no session is tied to this credential, or the token is refused"),
    },
    openapi_extra=_BEARER_OR_NOTHING,
)
async def logout(
    request: Request, runtime: RuntimeDep, body: RefreshTokenBody | None = None
) -> Response:
    """End the session of the Bearer access token or, without one, of the refresh token in
    the body."""
    authorization = request.headers.getlist("authorization")
    username = None
    if authorization:
        try:
            entry, _ = await runtime.authenticator.authenticate([v.encode() for v in authorization])
        except CredentialError as refused:
            return _refused(refused.description, refused.code)
        session_id, username = entry.session_id, entry.user.username
    elif body is None:
        raise HTTPException(415, NOT_JSON)
    else:
        async with runtime.pool.acquire() as conn:
            session_id = await session_of_refresh_token(conn, body.refresh_token)
    if session_id is None:
        return _refused("no session is tied to this credential")
    await end_session(
        runtime.pool,
        runtime.revocations,
        runtime.lifetimes,
        session_id,
        username,
        client_ip=client_ip_var.get(),
    )
    return JSONResponse(LoggedOut().model_dump(), headers=NO_STORE)
