"""The last resort for an exception no handler expected: our JSON 500 (a page for a person
in a browser), never Starlette's plain-text "Internal Server Error".

FastAPI's exception handlers cover the errors we know (routes/errors.py). Anything else
would reach Starlette's ``ServerErrorMiddleware``, which answers in plain text and lets the
server log the traceback a second time. This middleware sits inside the request context (the
answer carries the request id) and ends the story: one ERROR line that names the exception
type, with its traceback, and a 500 in our shape.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ErrorCode
from . import pages
from .errors import error_response

log = logging.getLogger("auth_service.app")


class LastResortMiddleware:
    """Pure ASGI: an unexpected exception becomes our 500, logged once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:
            log.error(
                "request failed: unexpected %s",
                type(e).__name__,
                exc_info=e,
                extra={"path": scope["path"]},
            )
            if started:
                # Part of the answer is on its way: the server closes the connection.
                return
            request = Request(scope)
            response: Response
            if pages.wants_html(request):
                response = pages.error_page(500, "Please try again in a moment.")
            else:
                response = error_response(ErrorCode.INTERNAL_ERROR, "internal error", 500)
            await response(scope, receive, send)
