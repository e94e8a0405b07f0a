"""``auth-service client list|show|remove`` as an operator runs it, against the real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from auth_service.oauth.clients import (
    Client,
    hash_secret,
    insert_client,
    upsert_metadata_document_client,
)
from auth_service.sessions import Lifetimes, start_session
from auth_service.settings import Settings

from .conftest import create_user
from .test_cli import assert_one_line_error, run

SECRET = "client-secret-never-shown"
DOCUMENT_ID = "https://app.example.com/client.json"


async def _clients(database_url: str) -> str:
    """A confidential registered client with one live OAuth session of alice's, and a
    metadata-document client; returns alice's session id."""
    await create_user(database_url, "alice")
    conn = await asyncpg.connect(database_url)
    try:
        await insert_client(
            conn,
            Client(
                client_id="oc_desk",
                kind="registered",
                client_name="Desk App",
                redirect_uris=("http://127.0.0.1:3333/callback",),
                grant_types=("authorization_code", "refresh_token"),
                token_endpoint_auth_method="client_secret_basic",
                secret_hash=hash_secret(SECRET),
                metadata={"client_name": "Desk App"},
            ),
        )
        await upsert_metadata_document_client(
            conn,
            Client(
                client_id=DOCUMENT_ID,
                kind="metadata_document",
                client_name="App",
                redirect_uris=("https://app.example.com/cb",),
                grant_types=("authorization_code",),
                token_endpoint_auth_method="none",
                metadata={"client_id": DOCUMENT_ID, "client_name": "App"},
                document_expires_at=datetime.now(UTC) + timedelta(minutes=5),
            ),
        )
        user_id = await conn.fetchval("SELECT id::text FROM users WHERE username = 'alice'")
        grant = await start_session(conn, user_id, Lifetimes.from_settings(Settings()))
        await conn.execute(
            "UPDATE sessions SET client_id = 'oc_desk' WHERE id = $1", grant.session_id
        )
        return grant.session_id
    finally:
        await conn.close()


async def test_list_and_show_name_every_client_and_never_a_secret(database_url: str) -> None:
    await _clients(database_url)
    listing = run(database_url, "client", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["CLIENT_ID", "KIND", "AUTH", "LAST_USED", "NAME"]
    assert lines[1].split() == [
        "oc_desk",
        "registered",
        "client_secret_basic",
        "never",
        "Desk",
        "App",
    ]
    assert lines[2].split() == [DOCUMENT_ID, "metadata_document", "none", "never", "App"]

    as_json = json.loads(run(database_url, "client", "list", "--json").stdout)
    assert [c["client_id"] for c in as_json] == ["oc_desk", DOCUMENT_ID]
    assert as_json[1]["document_expires_at"] is not None

    show = run(database_url, "client", "show", "oc_desk", "--json")
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["redirect_uris"] == ["http://127.0.0.1:3333/callback"]
    assert shown["token_endpoint_auth_method"] == "client_secret_basic"
    assert "secret_hash" not in shown
    text = run(database_url, "client", "show", "oc_desk").stdout
    assert "redirect_uris               http://127.0.0.1:3333/callback" in text
    for output in (listing.stdout, show.stdout, text):
        assert SECRET not in output and hash_secret(SECRET).hex() not in output


async def test_remove_ends_the_clients_sessions_and_deletes_it(database_url: str) -> None:
    session_id = await _clients(database_url)
    removed = run(database_url, "client", "remove", "oc_desk")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "removed OAuth client oc_desk; ended 1 session(s)\n"
    conn = await asyncpg.connect(database_url)
    try:
        # The revocation row is what every replica's validate reads: the client's access
        # tokens stop working, not only its refresh tokens.
        assert await conn.fetchval(
            "SELECT count(*) FROM revocations WHERE session_id = $1", session_id
        )
        assert await conn.fetchval("SELECT count(*) FROM oauth_clients") == 1
        audit = await conn.fetchrow(
            "SELECT outcome, detail::text FROM audit_log WHERE event = 'oauth_client_removed'"
        )
        assert audit is not None and audit["outcome"] == "success"
        assert json.loads(audit["detail"]) == {"client_id": "oc_desk", "sessions": 1}
    finally:
        await conn.close()
    remaining = json.loads(run(database_url, "client", "list", "--json").stdout)
    assert [c["client_id"] for c in remaining] == [DOCUMENT_ID]


async def test_an_unknown_client_is_one_line_and_exit_1(database_url: str) -> None:
    for action in ("show", "remove"):
        result = run(database_url, "client", action, "oc_nobody")
        assert result.returncode == 1
        assert_one_line_error(result, "no OAuth client 'oc_nobody'")
