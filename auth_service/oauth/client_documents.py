"""The clients that Client ID Metadata Documents describe, fetched once and kept in PostgreSQL.

/authorize and /token look such a client up here. A copy younger than its document allows
(``document_expires_at``, from its caching headers) is used as stored, by every replica; an
older one is fetched again and replaced, and a document that can no longer be fetched or used
refuses the client (fail closed: a stale copy may name redirect URIs its owner withdrew).
Refusals are remembered for a minute per process, so a flood of /authorize requests naming a
broken or hostile URL costs one fetch a minute, not one each. At most ``MAX_CONCURRENT_FETCHES``
fetches run at once per process, and one more is refused at once rather than queued: the
route holds a database connection while it waits, and a flood of slow documents must not
take the pool from sign-ins.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime

import httpx

from ..db import Connection
from .cimd import CACHE_MIN_SECONDS, CimdPolicy, fetch_client_document
from .clients import Client, get_client, upsert_metadata_document_client
from .errors import InvalidClientDocument

__all__ = ["MAX_CONCURRENT_FETCHES", "ClientDocuments"]

_MAX_REMEMBERED_FAILURES = 10_000
MAX_CONCURRENT_FETCHES = 4


class ClientDocuments:
    """The metadata-document clients of one process: its HTTP client, policy and recent
    refusals. Made by the lifespan with ``cimd_http_client(policy)``, which it closes."""

    def __init__(self, http: httpx.AsyncClient, policy: CimdPolicy) -> None:
        self.http = http
        self.policy = policy
        self._failures: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._fetching = 0

    async def resolve(self, conn: Connection, client_id: str) -> Client:
        """The client ``client_id`` (an https URL) names, from the stored copy while it is
        fresh, else from its document; ``InvalidClientDocument`` when it cannot be used."""
        stored = await get_client(conn, client_id)
        if stored is not None and stored.kind != "metadata_document":
            return stored
        if (
            stored is not None
            and stored.document_expires_at is not None
            and stored.document_expires_at > datetime.now(UTC)
        ):
            return stored
        self._raise_if_refused_recently(client_id)
        if self._fetching >= MAX_CONCURRENT_FETCHES:
            raise InvalidClientDocument("too many client metadata documents being fetched")
        self._fetching += 1
        try:
            document = await fetch_client_document(client_id, self.http, self.policy)
        except InvalidClientDocument as e:
            self._remember_failure(client_id, e.description)
            raise
        finally:
            self._fetching -= 1
        return await upsert_metadata_document_client(
            conn,
            Client(
                client_id=document.client_id,
                kind="metadata_document",
                client_name=document.client_name,
                redirect_uris=document.redirect_uris,
                grant_types=document.grant_types,
                token_endpoint_auth_method="none",  # noqa: S106 - a method, not a password
                metadata=document.metadata,
                document_expires_at=document.expires_at,
            ),
        )

    def _raise_if_refused_recently(self, client_id: str) -> None:
        remembered = self._failures.get(client_id)
        if remembered is None:
            return
        until, description = remembered
        if time.monotonic() < until:
            raise InvalidClientDocument(description)
        del self._failures[client_id]

    def _remember_failure(self, client_id: str, description: str) -> None:
        self._failures[client_id] = (time.monotonic() + CACHE_MIN_SECONDS, description)
        self._failures.move_to_end(client_id)
        while len(self._failures) > _MAX_REMEMBERED_FAILURES:
            self._failures.popitem(last=False)
