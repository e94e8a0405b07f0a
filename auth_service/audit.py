"""The audit trail: security-relevant events written to PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from .db import Executor
from .logs import client_ip_var, request_id_var

log = logging.getLogger(__name__)


async def record_event(
    db: Executor,
    event: str,
    outcome: str,
    *,
    username: str | None = None,
    request_id: str | None = None,
    client_addr: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row. A failure is logged, never raised: auditing must not turn a
    successful login into an error, and the log keeps the event. ``request_id`` and
    ``client_addr`` not given are the current request's (none outside a request: the CLI)."""
    try:
        await db.execute(
            """
            INSERT INTO audit_log (event, outcome, username, request_id, client_addr, detail)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            """,
            event,
            outcome,
            username,
            request_id if request_id is not None else request_id_var.get(),
            client_addr if client_addr is not None else client_ip_var.get(),
            json.dumps(detail or {}),
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        log.exception("could not write audit event", extra={"event": event, "outcome": outcome})


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str) -> datetime:
    """``30m``, ``1h``, ``7d`` ... ago, or an ISO 8601 date or time; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def list_events(
    db: Executor, *, username: str | None, since: datetime | None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Audit rows, oldest first, optionally for one user and from a point in time."""
    rows = await db.fetch(
        """
        SELECT occurred_at, event, outcome, username, request_id, client_addr, detail::text
        FROM audit_log
        WHERE ($1::text IS NULL OR username = $1) AND ($2::timestamptz IS NULL OR occurred_at >= $2)
        ORDER BY occurred_at DESC, id DESC
        LIMIT $3
        """,
        username,
        since,
        limit,
    )
    return [dict(r.items(), detail=json.loads(r["detail"])) for r in reversed(rows)]
