"""The one renderer of our errors for the FastAPI routes, and the table from exceptions to it.

Every JSON refusal is ``errors.error_body`` (``{"error", "error_description",
"request_id"}``) with an ``ErrorCode``; a person in a browser gets a page instead
(``pages.error_page``). FastAPI's own answers (404, 405, its 422 for a body that does not fit
the model) are translated here, never sent as FastAPI shapes them: a 422 names the field and
the problem, not pydantic's internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from ..errors import AuthServiceError, DatabaseError, ErrorCode, error_body
from ..logs import request_id_var
from ..metrics import count_oauth
from ..oauth.errors import InvalidInitialAccessToken, OAuthError, RegistrationThrottled
from . import pages

log = logging.getLogger("auth_service.app")

_NO_STORE = {"cache-control": "no-store"}
_BY_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.REQUEST_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID_REQUEST,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}
# OSError: a vanished Unix socket (the embedded server stopped) is a FileNotFoundError.
_UNAVAILABLE = (
    DatabaseError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def error_response(
    code: ErrorCode,
    description: str,
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    same_for_everyone: bool = False,
    **extra: Any,
) -> JSONResponse:
    """Our JSON error, not to be cached. ``same_for_everyone``: leave the request id out of
    the body, for an answer whose bytes must not vary (the failed login)."""
    request_id = None if same_for_everyone else request_id_var.get()
    return JSONResponse(
        error_body(code, description, request_id, **extra),
        status_code=status,
        headers={**_NO_STORE, **(headers or {})},
    )


def oauth_error_response(error: OAuthError, endpoint: str) -> Response:
    """An ``OAuthError`` of an authorization-server endpoint as our JSON error (its ``error``
    the RFCs' code), counted; with the header its status needs."""
    count_oauth(endpoint, error.code.value)
    log.info(
        "oauth %s refused",
        endpoint,
        extra={"error_type": error.code.value, "reason": error.description},
    )
    headers = {"pragma": "no-cache"}
    if error.status == 401 and endpoint in ("token", "revoke"):
        headers["www-authenticate"] = 'Basic realm="auth-service"'
    elif isinstance(error, InvalidInitialAccessToken):
        headers["www-authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(error, RegistrationThrottled):
        headers["retry-after"] = str(error.retry_after)
    return error_response(error.code, error.description, error.status, headers=headers)


def _allowed_methods(routes: Sequence[BaseRoute], request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's),
    HEAD wherever GET is (``AuthServiceApp`` answers HEAD as GET)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _http_error(routes: Sequence[BaseRoute]) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def render(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers.pop("Allow", None)
            headers["allow"] = _allowed_methods(routes, request)
        return _http_error_response(request, exc, headers)

    return render


def _http_error_response(request: Request, exc: HTTPException, headers: dict[str, str]) -> Response:
    status = exc.status_code
    if pages.wants_html(request):
        return pages.error_page(status, str(exc.detail), headers=headers)
    code = _BY_STATUS.get(status, ErrorCode.INVALID_REQUEST)
    if status >= 500:
        code = ErrorCode.SERVICE_UNAVAILABLE
    return error_response(code, str(exc.detail), status, headers=headers)


def _problem(error: Mapping[str, Any]) -> str:
    """``<field>: <problem>`` for one of pydantic's errors, without the input it saw."""
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    where = ".".join(location) or "body"
    message = str(error.get("msg", "is not valid"))
    return f"{where}: {message[:1].lower()}{message[1:]}"


async def _invalid_fields(request: Request, exc: Exception) -> Response:
    """FastAPI's 422: our shape, the first field at fault named."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    description = _problem(problems[0]) if problems else "the request is not valid"
    if pages.wants_html(request):
        return pages.error_page(422, description[:1].upper() + description[1:] + ".")
    return error_response(ErrorCode.INVALID_REQUEST, description, 422)


async def _unstorable(request: Request, exc: Exception) -> Response:
    """Input the database refuses (a NUL character, say) is the client's mistake: a 400."""
    log.info("request refused: input the database cannot store (%s)", type(exc).__name__)
    if pages.wants_html(request):
        return pages.error_page(400, "The request has characters that cannot be stored.")
    return error_response(
        ErrorCode.INVALID_REQUEST, "the request has characters that cannot be stored", 400
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, _UNAVAILABLE):
        log.error("database unavailable: %s", type(exc).__name__)
        if pages.wants_html(request):
            return pages.error_page(503, "Please try again in a moment.")
        return error_response(ErrorCode.SERVICE_UNAVAILABLE, "the database is unavailable", 503)
    log.error("request failed: %s", exc)
    if pages.wants_html(request):
        return pages.error_page(500, "Please try again in a moment.")
    return error_response(ErrorCode.INTERNAL_ERROR, "internal error", 500)


def install_error_handlers(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Route every error of ``app`` through this module; ``routers`` are those included in
    ``app``, whose routes a 405's ``Allow`` names."""
    routes = [*app.router.routes, *(route for router in routers for route in router.routes)]
    app.add_exception_handler(HTTPException, _http_error(routes))
    app.add_exception_handler(RequestValidationError, _invalid_fields)
    app.add_exception_handler(asyncpg.DataError, _unstorable)
    for kind in (AuthServiceError, *_UNAVAILABLE):
        app.add_exception_handler(kind, _internal_error)
