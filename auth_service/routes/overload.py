"""A JSON login refused ahead of the framework while the hashing queue has no room.

Under a flood whose clients send their next login as soon as the last one is refused, the
refusals themselves become the load: through FastAPI (middleware, body checks, validation)
one costs about twenty validate requests of the event loop. Answered here, unread, from the
request line and headers alone, it costs about one. The answer is the one the route would
give (``api.login_json``): 503, ``Retry-After`` and our JSON error with the request id. The
browser form keeps going through its route, which answers with the sign-in page.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ErrorCode, LoginOverloaded, error_body
from ..forwarded import choose_request_id
from ..login import note_overload
from ..logs import request_id_var
from ..runtime import Runtime

LOGIN_PATH = "/api/v1/auth/login"
DESCRIPTION = "too many logins at once; try again later"
_REQUEST_ID = b"x-request-id"
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


async def refuse_overloaded_login(runtime: Runtime, scope: Any, send: Any) -> bool:
    """Answer 503 when a login arriving now would be refused; False (nothing sent) when
    there is room, and the route takes the request."""
    try:
        runtime.passwords.check_room()
    except LoginOverloaded as overloaded:
        refused = overloaded
    else:
        return False
    supplied = next((value for name, value in scope["headers"] if name == _REQUEST_ID), None)
    request_id = choose_request_id(scope.get("client"), supplied, runtime.trusted_proxies)
    context = request_id_var.set(request_id)
    try:
        note_overload("login refused: hashing queue full", refused)
    finally:
        request_id_var.reset(context)
    body = json.dumps(
        error_body(
            ErrorCode.SERVICE_UNAVAILABLE,
            DESCRIPTION,
            request_id,
            retry_after=refused.retry_after,
        ),
        separators=(",", ":"),
    ).encode()
    headers = [
        *_HEADERS,
        (b"retry-after", str(refused.retry_after).encode()),
        (b"x-request-id", request_id.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True
