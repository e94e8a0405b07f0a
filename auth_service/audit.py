"""The audit trail: security-relevant events written to PostgreSQL."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

from .db import Executor

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
    successful login into an error, and the log keeps the event."""
    try:
        await db.execute(
            """
            INSERT INTO audit_log (event, outcome, username, request_id, client_addr, detail)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            """,
            event,
            outcome,
            username,
            request_id,
            client_addr,
            json.dumps(detail or {}),
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        log.exception("could not write audit event", extra={"event": event, "outcome": outcome})
