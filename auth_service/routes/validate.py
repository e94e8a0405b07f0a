"""``/api/v1/auth/validate`` as a plain ASGI callable: the proxy calls it on every request.

No routing, dependency injection or response models: one pass over the headers, the
authenticator (a cache look-up for a token seen before), pre-built identity headers, and
pre-bound metric children. The same domain functions serve it as any other route.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import CredentialError, ErrorCode
from ..forwarded import choose_request_id
from ..logs import request_id_var
from ..metrics import CACHE_HIT, CACHE_MISS, VALIDATE_DURATION, VALIDATE_REQUESTS

if TYPE_CHECKING:
    from ..app import Runtime

log = logging.getLogger("auth_service.validate")

_ALLOWED = VALIDATE_REQUESTS.labels("allowed", "ok")
_ERROR = VALIDATE_REQUESTS.labels("error", ErrorCode.INTERNAL_ERROR.value)
_UNAUTHORIZED = {code: VALIDATE_REQUESTS.labels("unauthorized", code.value) for code in ErrorCode}
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
_REALM = 'Bearer realm="auth-service"'


async def validate_endpoint(runtime: Runtime, scope: Any, receive: Any, send: Any) -> None:
    """Answer one validate request: 200 with identity headers, 401, or 500 (fail closed)."""
    started = time.perf_counter()
    authorization: list[bytes] = []
    proxy_request_id: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization.append(value)
        elif name == b"x-request-id":
            proxy_request_id = value
    request_id = choose_request_id(scope.get("client"), proxy_request_id, runtime.trusted_proxies)
    context = request_id_var.set(request_id)
    try:
        try:
            entry, cached = runtime.authenticator.authenticate(authorization)
        except CredentialError as refusal:
            await _unauthorized(send, refusal, request_id, bool(authorization))
            return
        except Exception:
            _ERROR.inc()
            log.exception("validate failed", extra={"auth_stage": "token_validation"})
            await _send(
                send,
                500,
                [_JSON, _NO_STORE],
                request_id,
                _body(ErrorCode.INTERNAL_ERROR, "internal error", request_id),
            )
            return
        (CACHE_HIT if cached else CACHE_MISS).inc()
        _ALLOWED.inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "allowed",
                extra={
                    "auth_stage": "policy",
                    "user": entry.identity.username,
                    "token_cache": "hit" if cached else "miss",
                },
            )
        await _send(send, 200, [_NO_STORE, *entry.headers], request_id, b"")
    finally:
        VALIDATE_DURATION.observe(time.perf_counter() - started)
        request_id_var.reset(context)


async def _unauthorized(
    send: Any, refusal: CredentialError, request_id: str, credential_sent: bool
) -> None:
    code = refusal.code
    _UNAUTHORIZED[code].inc()
    stage = "token_extraction" if code in _EXTRACTION_CODES else "token_validation"
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "refused",
            extra={"auth_stage": stage, "error_type": code.value, "reason": refusal.description},
        )
    challenge = _REALM
    if credential_sent:
        # error_description is our own fixed text; quotes cannot occur in it.
        challenge += f', error="invalid_token", error_description="{refusal.description}"'
    headers = [_JSON, _NO_STORE, (b"www-authenticate", challenge.encode())]
    await _send(send, 401, headers, request_id, _body(code, refusal.description, request_id))


_EXTRACTION_CODES = {ErrorCode.MISSING_TOKEN, ErrorCode.MALFORMED_HEADER, ErrorCode.TOKEN_TOO_LONG}


def _body(code: ErrorCode, description: str, request_id: str) -> bytes:
    return json.dumps(
        {"error": code.value, "error_description": description, "request_id": request_id}
    ).encode()


async def _send(
    send: Any, status: int, headers: list[tuple[bytes, bytes]], request_id: str, body: bytes
) -> None:
    headers.append((b"x-request-id", request_id.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
