"""The clients repository against the real PostgreSQL: store, read, list, remove."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from auth_service.oauth.clients import (
    Client,
    get_client,
    hash_secret,
    insert_client,
    list_clients,
    remove_client,
    upsert_metadata_document_client,
)
from auth_service.oauth.flows import purge_stale
from auth_service.sessions import Lifetimes, start_session
from auth_service.settings import Settings

from .conftest import create_user

LIFETIMES = Lifetimes.from_settings(Settings())


def _client(client_id: str = "oc_1", *, public: bool = False) -> Client:
    secret = None if public else "s3cret"
    return Client(
        client_id=client_id,
        kind="registered",
        client_name="Probe",
        redirect_uris=("http://127.0.0.1:3333/callback",),
        grant_types=("authorization_code", "refresh_token"),
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        secret_hash=hash_secret(secret) if secret else None,
        metadata={"client_name": "Probe"},
    )


async def test_a_client_round_trips_and_only_its_secret_matches(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await insert_client(conn, _client())
        await insert_client(conn, _client("oc_2", public=True))
        stored = await get_client(conn, "oc_1")
        assert stored is not None
        assert stored.redirect_uris == ("http://127.0.0.1:3333/callback",)
        assert stored.metadata == {"client_name": "Probe"}
        assert stored.secret_matches("s3cret") and not stored.secret_matches("s3cret ")
        assert stored.created_at is not None
        public = await get_client(conn, "oc_2")
        assert public is not None and public.public and not public.secret_matches("")
        assert [c.client_id for c in await list_clients(conn)] == ["oc_1", "oc_2"]
        # The database holds the hash, never the secret.
        raw = await conn.fetchval("SELECT secret_hash FROM oauth_clients WHERE client_id='oc_1'")
        assert b"s3cret" not in raw
        assert await get_client(conn, "nope") is None
    finally:
        await conn.close()


async def test_removing_a_client_revokes_its_sessions_first(database_url: str) -> None:
    await create_user(database_url, "alice")
    conn = await asyncpg.connect(database_url)
    try:
        await insert_client(conn, _client())
        user_id = await conn.fetchval("SELECT id::text FROM users WHERE username = 'alice'")
        grant = await start_session(conn, user_id, LIFETIMES)
        await conn.execute("UPDATE sessions SET client_id = 'oc_1' WHERE id = $1", grant.session_id)
        assert await remove_client(conn, "oc_1", LIFETIMES) is True
        assert await get_client(conn, "oc_1") is None
        revoked = await conn.fetchval(
            "SELECT count(*) FROM revocations WHERE session_id = $1", grant.session_id
        )
        assert revoked == 1
        assert await remove_client(conn, "oc_1", LIFETIMES) is False
    finally:
        await conn.close()


async def test_a_metadata_document_client_is_upserted_but_never_over_a_registered_one(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        doc = Client(
            client_id="https://app.example.com/client.json",
            kind="metadata_document",
            client_name="App",
            redirect_uris=("https://app.example.com/cb",),
            grant_types=("authorization_code",),
            token_endpoint_auth_method="none",
            metadata={"client_name": "App"},
            document_expires_at=datetime.now(UTC) + timedelta(minutes=5),
        )
        first = await upsert_metadata_document_client(conn, doc)
        renamed = Client(**{**_fields(doc), "client_name": "App 2"})
        second = await upsert_metadata_document_client(conn, renamed)
        assert (first.client_name, second.client_name) == ("App", "App 2")
        await insert_client(conn, _client("oc_x"))
        with pytest.raises(ValueError, match="not a metadata document"):
            await upsert_metadata_document_client(
                conn, Client(**{**_fields(doc), "client_id": "oc_x"})
            )
    finally:
        await conn.close()


def _fields(client: Client) -> dict[str, object]:
    return {name: getattr(client, name) for name in Client.__dataclass_fields__}


async def test_stale_flows_codes_and_unused_clients_are_purged(database_url: str) -> None:
    await create_user(database_url, "alice")
    conn = await asyncpg.connect(database_url)
    try:
        await insert_client(conn, _client("oc_old"))
        await insert_client(conn, _client("oc_used"))
        await insert_client(conn, _client("oc_new"))
        await conn.execute(
            "UPDATE oauth_clients SET created_at = now() - interval '2 days' "
            "WHERE client_id IN ('oc_old', 'oc_used')"
        )
        await conn.execute(
            "UPDATE oauth_clients SET last_used_at = now() WHERE client_id = 'oc_used'"
        )
        for flow_id, age in (("f_old", timedelta(days=2)), ("f_new", timedelta(0))):
            await conn.execute(
                "INSERT INTO oauth_flows (id, browser_hash, client_id, redirect_uri, "
                "code_challenge, resource, scope, expires_at) VALUES ($1, '\\x00', 'oc_new', "
                "'https://a.example/cb', repeat('a', 43), 'https://r.example', '{}', "
                "now() - $2::interval)",
                flow_id,
                age,
            )
        assert await purge_stale(conn) == 2
        left = await conn.fetch("SELECT client_id FROM oauth_clients ORDER BY 1")
        assert [r["client_id"] for r in left] == ["oc_new", "oc_used"]
        flows = await conn.fetch("SELECT id FROM oauth_flows")
        assert [r["id"] for r in flows] == ["f_new"]
    finally:
        await conn.close()
