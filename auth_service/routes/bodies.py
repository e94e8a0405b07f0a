"""Reading request bodies where FastAPI would read too much or too loosely: size caps (413
before a huge body is read), content types (415), and a clear 400 for anything else.

``JSONBodyRoute`` runs these checks ahead of FastAPI's own parsing, which then validates the
body against the route's pydantic model; ``read_form`` is the browser forms' reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

MAX_BODY_BYTES = 8192
MAX_FORM_NAMES = 16
NOT_JSON = "the body must be application/json"


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise HTTPException(413, f"the body must be at most {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"the body must be at most {max_bytes} bytes")
    return bytes(body)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def check_json_body(request: Request, *, required: bool) -> None:
    """A JSON object of at most ``MAX_BODY_BYTES``, or no body at all (no content type, no
    bytes) when not ``required``; a 4xx ``HTTPException`` for anything else. The body read
    stays on the request for FastAPI to parse."""
    if not required and "content-type" not in request.headers:
        if await _read_capped(request, MAX_BODY_BYTES):
            raise HTTPException(415, NOT_JSON)
        request._body = b""  # what FastAPI reads next: no body
        return
    if _media_type(request) != "application/json":
        raise HTTPException(415, NOT_JSON)
    body = await _read_capped(request, MAX_BODY_BYTES)
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HTTPException(400, "the body is not valid JSON") from e
    if not isinstance(value, dict):
        raise HTTPException(400, "the body must be a JSON object")
    request._body = body


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """A JSON object of at most ``max_bytes``, for a route that reads the members itself
    (client registration: RFC 7591's own error codes, not a model's 422)."""
    if _media_type(request) != "application/json":
        raise HTTPException(415, NOT_JSON)
    body = await _read_capped(request, max_bytes)
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HTTPException(400, "the body is not valid JSON") from e
    if not isinstance(value, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return value


class JSONBodyRoute(APIRoute):
    """A route whose JSON body is checked by ``check_json_body`` before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        required = self.body_field is not None and self.body_field.field_info.is_required()

        async def checked(request: Request) -> Response:
            try:
                await check_json_body(request, required=required)
                return await handler(request)
            except (HTTPException, RequestValidationError):
                self.refused()
                raise

        return checked

    def refused(self) -> None:
        """Called for a request refused before it reached the endpoint (its body, or its
        fields); nothing by default."""


async def read_form(request: Request, fields_wanted: set[str]) -> dict[str, str]:
    """An urlencoded form with each of our fields at most once; 4xx otherwise."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the form must be application/x-www-form-urlencoded")
    body = await _read_capped(request, MAX_BODY_BYTES)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPException(400, "the form is not valid") from e
    # At most MAX_FORM_NAMES names, as the documents' ``maxProperties`` say (a name given
    # twice is one property, refused below if it is ours). The byte cap above already bounds
    # the parse; a count of occurrences would refuse forms the document allows.
    if len(fields) > MAX_FORM_NAMES:
        raise HTTPException(400, f"the form has more than {MAX_FORM_NAMES} fields")
    form: dict[str, str] = {}
    for name, values in fields.items():
        if name not in fields_wanted:
            continue
        if len(values) != 1:
            raise HTTPException(400, f"the field '{name}' is repeated")
        if any(ord(c) < 0x20 and c not in "\t" for c in values[0]):
            raise HTTPException(400, f"the field '{name}' has control characters")
        form[name] = values[0]
    return form
