"""What ``trace-oauth`` writes down: every exchange, redacted before anyone sees it.

An operator attaches a trace to a bug report, so it must be safe to share: a password, code,
verifier, secret, CSRF token or token must not survive into it. Two nets catch them: members
and headers known to carry one are replaced wherever they appear (JSON and form bodies, query
strings, ``Location`` URLs), and every secret value the tracer itself has sent or received is
scrubbed from whatever text is left (an HTML page echoing a CSRF token, a body we cannot parse),
along with anything shaped like a JWT.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

import httpx

__all__ = ["REDACTED", "SECRET_HEADERS", "SECRET_MEMBERS", "Recorder", "Redactor"]

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
SECRET_MEMBERS = frozenset(
    {
        "password",
        "code",
        "code_verifier",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "csrf_token",
        "token",
        "registration_access_token",
    }
)
# Three base64url parts, the first a JSON header ("eyJ" is '{"' encoded).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_BODY_CHARS = 65_536
# Shorter values are not scrubbed as free text: "ok" would blank half a page.
_MIN_SCRUB_LENGTH = 6


class Redactor:
    """Replaces secrets with ``[redacted]``; ``remember`` adds a value seen on the wire."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def remember(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= _MIN_SCRUB_LENGTH:
                self._values.update({value, quote(value, safe=""), quote_plus(value)})

    def text(self, text: str) -> str:
        """Free text with every remembered value and every JWT replaced."""
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return _JWT.sub(REDACTED, text)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.query:
            url = parts._replace(query=self._query(parts.query)).geturl()
        return self.text(url)

    def _query(self, query: str) -> str:
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode([(k, REDACTED if k in SECRET_MEMBERS else v) for k, v in pairs])

    def headers(self, headers: httpx.Headers) -> dict[str, str]:
        shown: dict[str, str] = {}
        for name, value in headers.multi_items():
            lower = name.lower()
            if lower in SECRET_HEADERS:
                value = REDACTED
            elif lower == "location":
                value = self.url(value)
            else:
                value = self.text(value)
            shown[lower] = f"{shown[lower]}, {value}" if lower in shown else value
        return shown

    def body(self, content: bytes, content_type: str) -> str:
        text = content[:_MAX_BODY_CHARS].decode("utf-8", errors="replace")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type == "application/json" or media_type.endswith("+json"):
            try:
                text = json.dumps(_redact_json(json.loads(text)))
            except ValueError:
                pass
        elif media_type == "application/x-www-form-urlencoded":
            text = self._query(text)
        if len(content) > _MAX_BODY_CHARS:
            text += f"... [{len(content) - _MAX_BODY_CHARS} more bytes]"
        return self.text(text)


def _redact_json(value: Any) -> Any:
    # Only strings are secrets: a JSON-RPC error's numeric "code" stays readable.
    if isinstance(value, dict):
        return {
            k: REDACTED if k in SECRET_MEMBERS and isinstance(v, str) else _redact_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


@dataclass
class Recorder:
    """The trace log: one entry per exchange, redacted when the trace is written out.

    Entries hold the raw exchange until then, so that a secret first seen in a later step
    (a token in the token response) is also scrubbed from earlier entries."""

    redactor: Redactor = field(default_factory=Redactor)
    _exchanges: list[tuple[str, httpx.Response, float]] = field(default_factory=list)

    def record(self, step: str, response: httpx.Response, elapsed_ms: float) -> None:
        self._exchanges.append((step, response, elapsed_ms))

    def entries(self) -> list[dict[str, Any]]:
        return [self._entry(*exchange) for exchange in self._exchanges]

    def _entry(self, step: str, response: httpx.Response, elapsed_ms: float) -> dict[str, Any]:
        request = response.request
        r = self.redactor
        return {
            "step": step,
            "request": {
                "method": request.method,
                "url": r.url(str(request.url)),
                "headers": r.headers(request.headers),
                "body": r.body(request.content, request.headers.get("content-type", "")),
            },
            "response": {
                "status": response.status_code,
                "headers": r.headers(response.headers),
                "body": r.body(response.content, response.headers.get("content-type", "")),
            },
            "elapsed_ms": round(elapsed_ms, 1),
        }
