"""``POST /api/v1/auth/login``: JSON credentials in, an access token out."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..devices import DEVICE_COOKIE, DEVICE_MAX_AGE_SECONDS
from ..errors import ErrorCode, LoginThrottled
from ..login import SignedIn, attempt_login
from ..logs import client_ip_var, request_id_var
from ..metrics import LOGIN_ATTEMPTS
from ..sessions import start_session
from .bodies import read_json_object
from .sessions import token_response

LOGIN_PATH = "/api/v1/auth/login"

MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 1024

# The same body, byte for byte, for an unknown user, a wrong password and a disabled account.
_FAILED = json.dumps(
    {
        "error": ErrorCode.INVALID_CREDENTIALS.value,
        "error_description": "invalid username or password",
    }
).encode()


def _string_field(body: dict[str, Any], name: str, max_length: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise HTTPException(422, f"'{name}' must be a non-empty string")
    if len(value) > max_length:
        raise HTTPException(422, f"'{name}' must be at most {max_length} characters")
    return value


async def verify_login(request: Request, username: str, password: str) -> SignedIn | None:
    """``login.attempt_login`` for this request: its client and its device cookie."""
    runtime = request.app.state.runtime
    return await attempt_login(
        runtime.pool,
        runtime.passwords,
        runtime.throttle,
        runtime.csrf_key,
        username,
        password,
        client_ip=client_ip_var.get(),
        device_token=request.cookies.get(DEVICE_COOKIE),
    )


def set_device_cookie(request: Request, response: Response, token: str, route: str) -> None:
    """The device cookie, sent back only to the login at ``route`` (a path of ours) and only
    to our own host (no Domain): it lets an upstream see nothing, and no page use it."""
    settings = request.app.state.runtime.settings
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=DEVICE_MAX_AGE_SECONDS,
        path=urlsplit(settings.public_url).path + route,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def throttled_response(refusal: LoginThrottled) -> Response:
    """429 with Retry-After, the same for every account."""
    return JSONResponse(
        {
            "error": ErrorCode.TOO_MANY_ATTEMPTS.value,
            "error_description": "too many failed attempts; try again later",
            "retry_after": refusal.retry_after,
            "request_id": request_id_var.get(),
        },
        status_code=429,
        headers={"retry-after": str(refusal.retry_after), "cache-control": "no-store"},
    )


async def login_json(request: Request) -> Response:
    """Verify a username and password; 200 with a Bearer token, or the one generic 401."""
    runtime = request.app.state.runtime
    try:
        body = await read_json_object(request)
        username = _string_field(body, "username", MAX_USERNAME_LENGTH)
        password = _string_field(body, "password", MAX_PASSWORD_LENGTH)
    except HTTPException:
        LOGIN_ATTEMPTS.labels("invalid_request").inc()
        raise
    try:
        signed_in = await verify_login(request, username, password)
    except LoginThrottled as refusal:
        return throttled_response(refusal)
    if signed_in is None:
        return Response(
            _FAILED,
            status_code=401,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )
    async with runtime.pool.acquire() as conn:
        grant = await start_session(conn, signed_in.user.id, runtime.lifetimes)
    response = token_response(runtime, signed_in.user, grant)
    set_device_cookie(request, response, signed_in.device_token, LOGIN_PATH)
    return response
