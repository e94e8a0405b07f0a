"""The client's address on every route but validate (``routes/context.py``): a trusted proxy's
``X-Forwarded-For`` is believed, nobody else's; the throttle, the audit trail and
``AUTH_METRICS_ALLOW`` all judge the client behind the proxy, not the proxy."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx
import pytest

from auth_service.app import AuthServiceApp
from auth_service.settings import Settings

from .conftest import PASSWORD, create_user

LOGIN = "/api/v1/auth/login"
PROXY = "127.0.0.1"  # in AUTH_TRUSTED_PROXIES by default
STRANGER = "203.0.113.50"  # not


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(throttle_address_failures=5, metrics_allow="127.0.0.1/32")


def peer(app: AuthServiceApp, address: str) -> httpx.AsyncClient:
    """A client whose connection comes from ``address`` (a proxy, or a client itself)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test")


async def audited_addresses(database_url: str) -> list[str | None]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT client_addr FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    return [row["client_addr"] for row in rows]


@pytest.mark.parametrize(
    ("address", "headers", "expected"),
    [
        (PROXY, [("X-Forwarded-For", "203.0.113.9")], "203.0.113.9"),
        (PROXY, [("X-Forwarded-For", "198.51.100.1, 203.0.113.9")], "203.0.113.9"),
        # HAProxy's way: a line of its own after the client's (forged) one.
        (PROXY, [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9")],
         "203.0.113.9"),
        (STRANGER, [("X-Forwarded-For", "198.51.100.1")], STRANGER),
        (PROXY, [], PROXY),
    ],
)  # fmt: skip
async def test_the_audit_trail_names_the_client_behind_the_proxy(
    app: AuthServiceApp,
    database_url: str,
    address: str,
    headers: list[tuple[str, str]],
    expected: str,
) -> None:
    async with peer(app, address) as client:
        response = await client.post(
            LOGIN, json={"username": "alice", "password": "wrong guess"}, headers=headers
        )
    assert response.status_code == 401
    assert await audited_addresses(database_url) == [expected]


async def test_failed_logins_behind_a_proxy_lock_out_only_their_own_client(
    app: AuthServiceApp, database_url: str
) -> None:
    """Issue 16, H2: every client behind one proxy used to share the proxy's address, so
    one client's failures locked everyone out."""
    await create_user(database_url, "alice")
    async with peer(app, PROXY) as proxy:

        async def login(client: str, name: str, password: str) -> int:
            # The proxy appends the address it saw to what the client sent (nginx's
            # $proxy_add_x_forwarded_for); the attacker forges alice's address in front.
            forwarded = f"203.0.113.10, {client}" if client == "203.0.113.9" else client
            response = await proxy.post(
                LOGIN,
                json={"username": name, "password": password},
                headers={"X-Forwarded-For": forwarded},
            )
            return response.status_code

        for i in range(5):
            assert await login("203.0.113.9", f"random-name-{i}", "wrong guess") == 401
        assert await login("203.0.113.9", "alice", PASSWORD) == 429
        assert await login("203.0.113.10", "alice", PASSWORD) == 200
    assert set(await audited_addresses(database_url)) == {"203.0.113.9", "203.0.113.10"}


@pytest.mark.parametrize(
    ("address", "forwarded_for", "status"),
    [
        (PROXY, None, 200),  # Prometheus on the allowed address
        (PROXY, "203.0.113.9", 403),  # anyone through a proxy on that address
        (STRANGER, "127.0.0.1", 403),  # a forged claim from a stranger
    ],
)
async def test_metrics_allow_judges_the_client_not_the_proxy(
    app: AuthServiceApp, address: str, forwarded_for: str | None, status: int
) -> None:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with peer(app, address) as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 403:
        body = response.json()
        assert body["error"] == "forbidden" and body["error_description"]
        assert body["request_id"] == response.headers["x-request-id"]
        assert "auth_validate" not in response.text
