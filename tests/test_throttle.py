"""Login throttling: per account and per address, shared through PostgreSQL, never forever."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.settings import Settings

from .conftest import PASSWORD, Served, create_user, run_cli

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def app(make_settings: Callable[..., Settings]) -> AsyncIterator[AuthServiceApp]:
    application = create_app(make_settings(throttle_address_failures=25), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


async def attempt(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": user, "password": password})


async def test_an_account_is_locked_after_ten_failures_and_others_are_not(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    await create_user(database_url, "bob")
    for _ in range(10):
        assert (await attempt(client, "alice", "wrong guess")).status_code == 401
    locked = await attempt(client, "alice", PASSWORD)  # even the right password, for now
    assert locked.status_code == 429
    assert locked.json()["error"] == "too_many_attempts"
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    assert locked.headers["retry-after"] == str(locked.json()["retry_after"])
    assert (await attempt(client, "bob", PASSWORD)).status_code == 200
    # The same answer for a name that does not exist, once it has been guessed at as much.
    for _ in range(10):
        await attempt(client, "nobody", "wrong guess")
    assert (await attempt(client, "nobody", "wrong guess")).status_code == 429


async def test_the_lock_ends_and_backs_off_exponentially(
    app: AuthServiceApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    conn = await asyncpg.connect(database_url)
    try:
        lockouts = []
        for round_ in range(3):
            # Each round from another address, to stay below the per-address limit.
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{round_}", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
                for _ in range(10):
                    await attempt(c, "alice", "wrong guess")
            row = await conn.fetchrow(
                "SELECT lockouts, extract(epoch FROM locked_until - now()) AS left "
                "FROM login_throttle WHERE key = 'user:alice'"
            )
            lockouts.append(round(row["left"] / 60))
            # Let the lock run out (as if the time had passed).
            await conn.execute(
                "UPDATE login_throttle SET locked_until = now() - interval '1s' "
                "WHERE key = 'user:alice'"
            )
        assert lockouts == [1, 2, 4]  # minutes: doubled at each lockout
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            assert (await attempt(c, "alice", PASSWORD)).status_code == 200
        cleared = await conn.fetchval(
            "SELECT count(*) FROM login_throttle WHERE key = 'user:alice'"
        )
        assert cleared == 0  # a success starts the account afresh
    finally:
        await conn.close()


async def test_an_address_has_its_own_higher_limit(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    for i in range(25):  # 25 different names, a few tries each: below every account limit
        await attempt(client, f"name-{i}", "wrong guess")
    refused = await attempt(client, "alice", PASSWORD)
    assert refused.status_code == 429


async def test_the_form_login_is_throttled_too(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    for _ in range(10):
        await attempt(client, "alice", "wrong guess")
    page = await client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    cookie = "; ".join(f"{name}={value}" for name, value in page.cookies.items())
    response = await client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf, "rd": "/"},
        headers={"Cookie": cookie},
    )
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text
    assert "retry-after" in response.headers


def test_an_operator_unlocks_an_account_and_replicas_share_the_count(
    database_url: str, serve: Callable[..., Served]
) -> None:
    asyncio.run(create_user(database_url, "alice"))
    a, b = serve(AUTH_DATABASE_URL=database_url), serve(AUTH_DATABASE_URL=database_url)
    for i in range(10):  # spread over both replicas
        replica = a if i % 2 else b
        httpx.post(replica.url + LOGIN, json={"username": "alice", "password": "wrong guess"})
    for replica in (a, b):
        login = httpx.post(replica.url + LOGIN, json={"username": "alice", "password": PASSWORD})
        assert login.status_code == 429
    unlocked = run_cli("user", "unlock", "alice", AUTH_DATABASE_URL=database_url)
    assert unlocked.returncode == 0 and "unlocked alice" in unlocked.stdout
    login = httpx.post(b.url + LOGIN, json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200


def test_validate_stays_fast_while_logins_are_hammered(
    database_url: str, serve: Callable[..., Served]
) -> None:
    asyncio.run(create_user(database_url, "alice"))
    served = serve(
        AUTH_DATABASE_URL=database_url,
        AUTH_THROTTLE_ACCOUNT_FAILURES="1000",
        AUTH_THROTTLE_ADDRESS_FAILURES="100000",
    )
    token = httpx.post(served.url + LOGIN, json={"username": "alice", "password": PASSWORD}).json()[
        "access_token"
    ]
    stop = threading.Event()
    logins = [0]

    def hammer() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as http:
            while not stop.is_set():
                http.post(LOGIN, json={"username": "alice", "password": "wrong guess"})
                logins[0] += 1

    workers = [threading.Thread(target=hammer) for _ in range(8)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        latencies = []
        with httpx.Client(base_url=served.url) as http:
            for _ in range(100):
                started = time.perf_counter()
                response = http.get(
                    "/api/v1/auth/validate", headers={"Authorization": f"Bearer {token}"}
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert logins[0] > 10  # the logins really were running meanwhile
    assert statistics.median(latencies) < 0.050, statistics.median(latencies)
