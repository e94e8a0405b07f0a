"""Request context for the FastAPI routes: the request id and the client's address, each
decided once per request."""

from __future__ import annotations

from typing import Any

from ..forwarded import choose_request_id, client_address
from ..logs import client_ip_var, flow_id_var, request_id_var


class RequestContextMiddleware:
    """Pure ASGI: take ``X-Request-Id`` from a trusted proxy (else make one), put it in the
    logging context for the whole request and in the ``X-Request-Id`` response header.

    The client's address is decided here too, with validate's trust rules
    (``forwarded.client_address``): behind a proxy, ``request.client`` is the proxy, and a
    throttle, an audit row or ``AUTH_METRICS_ALLOW`` that used it would treat every client
    as one. Routes read ``client_ip_var``, never ``request.client``.
    """

    def __init__(self, app: Any, app_ref: Any) -> None:
        self.app = app
        self.app_ref = app_ref

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied: bytes | None = None
        forwarded_for: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-request-id" and supplied is None:
                supplied = value
            elif name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
        client = scope.get("client")
        trusted = self.app_ref.trusted_proxies
        request_id = choose_request_id(client, supplied, trusted)
        peer = client[0] if isinstance(client, list | tuple) and client else None
        encoded = request_id.encode()
        context = request_id_var.set(request_id)
        client_context = client_ip_var.set(client_address(peer, ",".join(forwarded_for), trusted))
        flow_context = flow_id_var.set(None)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", encoded))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            flow_id_var.reset(flow_context)
            client_ip_var.reset(client_context)
            request_id_var.reset(context)
