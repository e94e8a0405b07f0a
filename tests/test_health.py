"""Health endpoints: live, ready (database and keys), and the summary."""

from __future__ import annotations

import httpx

from auth_service.app import AuthServiceApp

from .conftest import drop_database


async def test_healthy_service(client: httpx.AsyncClient, app: AuthServiceApp) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "keys": True}
    summary = (await client.get("/health")).json()
    assert summary["status"] == "ok"
    assert app.runtime is not None
    assert summary["signing_kid"] == app.runtime.keys.signing.kid


async def test_not_ready_when_the_database_is_gone(
    client: httpx.AsyncClient, server_url: str, database_url: str
) -> None:
    await drop_database(server_url, database_url)
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] is False
    assert (await client.get("/health/live")).status_code == 200
    # Validation never needed the database: a request is still answered (here: 401).
    assert (await client.get("/api/v1/auth/validate")).status_code == 401
    # A login does need it: a clear 503, not a traceback.
    login = await client.post("/api/v1/auth/login", json={"username": "a", "password": "b"})
    assert login.status_code == 503
    assert login.json()["error"] == "service_unavailable"


async def test_unknown_paths_and_methods_get_json_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await client.get("/api/v1/auth/login")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
