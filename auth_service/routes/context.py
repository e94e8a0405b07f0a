"""Request context for the Starlette routes: the request id, set once, echoed back."""

from __future__ import annotations

from typing import Any

from ..forwarded import choose_request_id
from ..logs import request_id_var


class RequestContextMiddleware:
    """Pure ASGI: take ``X-Request-Id`` from a trusted proxy (else make one), put it in the
    logging context for the whole request and in the ``X-Request-Id`` response header."""

    def __init__(self, app: Any, app_ref: Any) -> None:
        self.app = app
        self.app_ref = app_ref

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next((v for n, v in scope["headers"] if n == b"x-request-id"), None)
        request_id = choose_request_id(scope.get("client"), supplied, self.app_ref.trusted_proxies)
        encoded = request_id.encode()
        context = request_id_var.set(request_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", encoded))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(context)
