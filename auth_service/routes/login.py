"""``POST /api/v1/auth/login``: JSON credentials in, an access token out."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import audit, users
from ..errors import ErrorCode
from ..logs import request_id_var
from ..metrics import LOGIN_ATTEMPTS
from ..tokens import issue_access_token
from ..types import User

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8192
MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 1024

# The same body, byte for byte, for an unknown user, a wrong password and a disabled account.
_FAILED = json.dumps(
    {
        "error": ErrorCode.INVALID_CREDENTIALS.value,
        "error_description": "invalid username or password",
    }
).encode()


async def read_json_object(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object; a 4xx ``HTTPException`` for anything else."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "the body must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise HTTPException(413, f"the body must be at most {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"the body must be at most {max_bytes} bytes")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HTTPException(400, "the body is not valid JSON") from e
    if not isinstance(value, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return value


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
    user = await users.find_user(runtime.pool, username) if username else None
    matches = await runtime.passwords.verify(user.password_hash if user else None, password)
    client = request.client.host if request.client else None
    ok = user is not None and matches and not user.disabled
    outcome = "success" if ok else "failure"
    LOGIN_ATTEMPTS.labels(outcome).inc()
    log.info("login " + ("succeeded" if ok else "failed"), extra={"user": username})
    await audit.record_event(
        runtime.pool,
        "login",
        outcome,
        username=username or None,
        request_id=request_id_var.get(),
        client_addr=client,
    )
    return user if ok else None


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
    user = await verify_login(request, username, password)
    if user is None:
        return Response(
            _FAILED,
            status_code=401,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )
    token, expires_in = issue_access_token(runtime.keys, runtime.token_params, user)
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )
