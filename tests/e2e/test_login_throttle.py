"""Login throttling through Traefik, nginx and Caddy for real (issue 16, H2 and M2): each client is
counted by the address the proxy saw, so one client's failures lock out no one else, and a
forged ``X-Forwarded-For`` cannot pick another client's counters.

Clients bind to their own loopback addresses (127.0.0.2, ...); only the proxy's 127.0.0.1 is
in ``AUTH_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from ..conftest import PASSWORD, create_user
from .conftest import Stack

ATTACKER, ALICE, BOB = "127.0.0.2", "127.0.0.3", "127.0.0.4"
LOGIN = "/api/v1/auth/login"


def client_at(address: str) -> httpx.Client:
    """A client whose connections leave from ``address``."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def login(client: httpx.Client, stack: Stack, username: str, password: str, **headers: str) -> int:
    response = client.post(
        stack.url("auth", LOGIN),
        headers=stack.headers("auth", **headers),
        json={"username": username, "password": password},
    )
    return response.status_code


@pytest.mark.parametrize(
    "stack_env", [{"AUTH_THROTTLE_ACCOUNT_FAILURES": "5", "AUTH_THROTTLE_ADDRESS_FAILURES": "10"}]
)
async def test_one_clients_failures_lock_out_no_one_else(stack: Stack, database_url: str) -> None:
    await create_user(database_url, "alice")
    await create_user(database_url, "bob")
    # Every request of the attacker claims to come from alice's address.
    forged = {"X-Forwarded-For": ALICE, "X-Real-IP": ALICE, "Forwarded": f"for={ALICE}"}
    with client_at(ATTACKER) as attacker:
        for _ in range(5):  # alice's account, from the attacker: that client is locked out
            assert login(attacker, stack, "alice", "wrong guess", **forged) == 401
        assert login(attacker, stack, "alice", PASSWORD, **forged) == 429
        for i in range(5):  # made-up names until the attacker's address is locked
            assert login(attacker, stack, f"random-{i}", "wrong guess", **forged) == 401
        assert login(attacker, stack, "bob", PASSWORD, **forged) == 429
    with client_at(ALICE) as alice, client_at(BOB) as bob:
        assert login(alice, stack, "alice", PASSWORD) == 200
        assert login(bob, stack, "bob", PASSWORD) == 200

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT outcome, client_addr FROM audit_log WHERE event = 'login'")
    finally:
        await conn.close()
    by_outcome: dict[str, set[str]] = {}
    for row in rows:
        by_outcome.setdefault(row["outcome"], set()).add(row["client_addr"])
    assert by_outcome == {
        "failure": {ATTACKER},
        "throttled": {ATTACKER},
        "success": {ALICE, BOB},
    }
