"""Data safety: a ``kill -9`` of the service in the middle of a burst of logins and refreshes
leaves the database consistent and every token issued before it valid; concurrent ``user
add`` of one name makes one user and clear errors."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from .conftest import PASSWORD, Served, auth_service_command, cli_env, create_user
from .test_replicas import validate

# Each a list of what breaks the sessions' invariants; every one must come back empty.
INVARIANTS = {
    "a session without refresh tokens": """
        SELECT s.id FROM sessions s
        WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)
    """,
    "a live session without exactly one usable refresh token (a half-rotated chain)": """
        SELECT s.id FROM sessions s
        WHERE s.revoked_at IS NULL
          AND (SELECT count(*) FROM refresh_tokens r
               WHERE r.session_id = s.id AND r.retired_at IS NULL) <> 1
    """,
    "a revoked session that other replicas would not hear of": """
        SELECT s.id FROM sessions s
        WHERE s.revoked_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM revocations v WHERE v.session_id = s.id)
    """,
}


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


def _burst(url: str, issued: list[str], stop: threading.Event) -> None:
    """Log in, then refresh the session a few times, until the service is gone."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                pair = client.post(
                    "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
                ).json()
                issued.append(pair["access_token"])
                for _ in range(3):
                    pair = client.post(
                        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
                    ).json()
                    issued.append(pair["access_token"])
            except (httpx.TransportError, KeyError):
                return  # killed, or an answer cut short by the kill


async def test_a_kill_9_in_a_burst_leaves_the_sessions_consistent_and_tokens_valid(
    database_url: str, serve: Callable[..., Served], alice: None
) -> None:
    replica = serve(AUTH_DATABASE_URL=database_url, AUTH_THROTTLE_ACCOUNT_FAILURES="1000")
    issued: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_burst, args=(replica.url, issued, stop)) for _ in range(6)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while len(issued) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    replica.process.kill()  # SIGKILL: no shutdown, no finally, transactions cut short
    replica.process.wait(10)
    stop.set()
    for worker in workers:
        worker.join()
    assert len(issued) >= 40

    conn = await asyncpg.connect(database_url)
    try:
        for what, query in INVARIANTS.items():
            assert await conn.fetch(query) == [], what
        assert await conn.fetchval("SELECT count(*) FROM sessions") >= len(issued) // 4
    finally:
        await conn.close()

    again = serve(AUTH_DATABASE_URL=database_url)
    refused = [token for token in issued if validate(again, token) != 200]
    assert refused == []


def test_concurrent_user_add_of_one_name_makes_one_user_and_clear_errors(
    database_url: str,
) -> None:
    adds = [
        subprocess.Popen(
            [*auth_service_command(), "user", "add", "bob", "--password-stdin", "--group", "ops"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(AUTH_DATABASE_URL=database_url),
        )
        for _ in range(4)
    ]
    results = [add.communicate(PASSWORD, timeout=60) for add in adds]
    codes = sorted(add.returncode for add in adds)
    assert codes == [0, 1, 1, 1], results
    for add, (_, stderr) in zip(adds, results, strict=True):
        if add.returncode:
            assert stderr.strip().splitlines() == ["auth-service: error: user already exists: bob"]
