"""``POST /api/v1/auth/login``: JSON credentials in, an access token out."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import audit, throttle, users
from ..errors import ErrorCode, LoginThrottled
from ..logs import client_ip_var, request_id_var
from ..metrics import LOGIN_ATTEMPTS
from ..sessions import start_session
from ..types import User
from .bodies import read_json_object
from .sessions import token_response

log = logging.getLogger(__name__)

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


async def verify_login(request: Request, username: str, password: str) -> User | None:
    """The user when ``password`` is theirs and the account is enabled; None otherwise.

    Counted, logged and audited. Unknown users are verified against a dummy hash: the same
    work, time and answer as a wrong password, so names cannot be probed.
    """
    runtime = request.app.state.runtime
    client = client_ip_var.get()  # the client behind the proxy, not the proxy
    # A name no user can have (control characters, ...) is never looked up or stored: it
    # fails like an unknown name, counted against the client address only.
    valid_name = users.is_valid_username(username)
    keys = [throttle.account_key(username) if valid_name else None, throttle.address_key(client)]
    audit_name = username if valid_name else None
    wait = await throttle.retry_after(runtime.pool, keys)
    if wait:
        # Refused before any hashing: as fast for an unknown name as for a known one.
        LOGIN_ATTEMPTS.labels("throttled").inc()
        log.info("login throttled", extra={"user": audit_name, "retry_after": wait})
        await audit.record_event(
            runtime.pool,
            "login",
            "throttled",
            username=audit_name,
            request_id=request_id_var.get(),
            client_addr=client,
            detail={"retry_after": wait},
        )
        raise LoginThrottled(wait)
    user = await users.find_user(runtime.pool, username) if valid_name else None
    matches = await runtime.passwords.verify(user.password_hash if user else None, password)
    ok = user is not None and matches and not user.disabled
    outcome = "success" if ok else "failure"
    LOGIN_ATTEMPTS.labels(outcome).inc()
    log.info("login " + ("succeeded" if ok else "failed"), extra={"user": audit_name})
    policy = runtime.throttle
    if ok:
        await throttle.record_success(runtime.pool, username)
    else:
        async with runtime.pool.acquire() as conn:
            await throttle.record_failure(conn, keys[0], policy.account_failures, policy)
            await throttle.record_failure(conn, keys[1], policy.address_failures, policy)
    await audit.record_event(
        runtime.pool,
        "login",
        outcome,
        username=audit_name,
        request_id=request_id_var.get(),
        client_addr=client,
    )
    return user if ok else None


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
        user = await verify_login(request, username, password)
    except LoginThrottled as refusal:
        return throttled_response(refusal)
    if user is None:
        return Response(
            _FAILED,
            status_code=401,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )
    async with runtime.pool.acquire() as conn:
        grant = await start_session(conn, user.id, runtime.lifetimes)
    return token_response(runtime, user, grant)
