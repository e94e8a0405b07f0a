"""Reading request bodies: size caps, content types, and a clear 4xx for anything else."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_BODY_BYTES = 8192


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


async def read_json_object(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object; a 4xx ``HTTPException`` for anything else."""
    if _media_type(request) != "application/json":
        raise HTTPException(415, "the body must be application/json")
    body = await _read_capped(request, max_bytes)
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HTTPException(400, "the body is not valid JSON") from e
    if not isinstance(value, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return value


async def read_form(request: Request, fields_wanted: set[str]) -> dict[str, str]:
    """An urlencoded form with each of our fields at most once; 4xx otherwise."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the form must be application/x-www-form-urlencoded")
    body = await _read_capped(request, MAX_BODY_BYTES)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPException(400, "the form is not valid") from e
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
