"""Stopping a served process (SIGTERM): readiness answers 503 at once while requests still
pass for AUTH_SHUTDOWN_DELAY_SECONDS, then the logins in flight finish before it exits,
within a bounded time."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import PASSWORD, Served, create_user
from .test_replicas import login, validate


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


def test_sigterm_turns_readiness_to_503_and_keeps_serving_for_the_delay(
    database_url: str, serve: Callable[..., Served], alice: None
) -> None:
    replica = serve(AUTH_DATABASE_URL=database_url, AUTH_SHUTDOWN_DELAY_SECONDS="2")
    token = login(replica)["access_token"]
    assert httpx.get(replica.url + "/health/validate").json() == {
        "status": "ok",
        "draining": False,
    }
    replica.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    time.sleep(0.2)
    ready = httpx.get(replica.url + "/health/ready")
    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert httpx.get(replica.url + "/health/validate").status_code == 503
    assert httpx.get(replica.url + "/health/live").status_code == 200
    assert validate(replica, token) == 200  # requests still pass meanwhile
    replica.process.wait(10)
    assert time.monotonic() - sent >= 2
    assert "draining" in replica.log_text()


def test_sigterm_lets_the_logins_in_flight_finish(
    database_url: str, serve: Callable[..., Served], alice: None
) -> None:
    replica = serve(
        AUTH_DATABASE_URL=database_url,
        AUTH_SHUTDOWN_DELAY_SECONDS="0.5",
        AUTH_SHUTDOWN_TIMEOUT_SECONDS="10",
        AUTH_THROTTLE_ACCOUNT_FAILURES="1000",  # the attempts are counted before hashing
    )

    clients = [httpx.Client(base_url=replica.url, timeout=30) for _ in range(12)]
    for client in clients:  # connected before SIGTERM, as a proxy's pooled connections are
        assert client.get("/health/live").status_code == 200
    ready = threading.Barrier(len(clients) + 1)

    def attempt(client: httpx.Client) -> tuple[int, float]:
        ready.wait()
        status = client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
        ).status_code
        client.close()
        return status, time.monotonic()

    # More logins than the hashing threads serve at once: some are still queued at SIGTERM.
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = [pool.submit(attempt, client) for client in clients]
        ready.wait()
        time.sleep(0.1)
        replica.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        results = [a.result() for a in answers]
    replica.process.wait(15)
    assert [status for status, _ in results] == [200] * 12
    # Some were still hashing when the server stopped listening, half a second in.
    assert max(finished for _, finished in results) > sent + 0.5
    assert time.monotonic() - sent < 12
