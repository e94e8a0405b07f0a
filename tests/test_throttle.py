"""Login throttling: per account and client together, per address, a slowing budget per
account, device cookies; counted before hashing, shared through PostgreSQL, never forever."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service import throttle
from auth_service.app import AuthServiceApp, create_app
from auth_service.settings import Settings

from .conftest import PASSWORD, Served, create_user, run_cli

LOGIN = "/api/v1/auth/login"
ATTACKER = "198.51.100.66"
OWNER = "203.0.113.20"

StartApp = Callable[..., Any]


@pytest.fixture
def start_app(make_settings: Callable[..., Settings]) -> StartApp:
    """``async with start_app(**settings) as app``: the app with these throttle settings."""

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[AuthServiceApp]:
        settings = make_settings(cookie_secure=False, **overrides)
        application = create_app(settings, configure_logs=False)
        async with LifespanManager(application, startup_timeout=30):
            yield application

    return start


def client_at(
    app: AuthServiceApp, address: str, cookies: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """A client connecting from ``address`` (none of these is a trusted proxy)."""
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test", cookies=cookies)


async def attempt(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": user, "password": password})


async def expire_locks(database_url: str, pattern: str) -> None:
    """Let the locks of keys matching ``pattern`` run out, as if the time had passed."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE login_throttle SET locked_until = now() - interval '1s' WHERE key LIKE $1",
            pattern,
        )
    finally:
        await conn.close()


async def count_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM login_throttle"))
    finally:
        await conn.close()


async def test_a_client_is_locked_out_of_one_account_and_no_one_else_is(
    start_app: StartApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    await create_user(database_url, "bob")
    async with (
        start_app(throttle_account_failures=4) as app,
        client_at(app, ATTACKER) as attacker,
        client_at(app, OWNER) as owner,
    ):
        for _ in range(4):
            assert (await attempt(attacker, "alice", "wrong guess")).status_code == 401
        locked = await attempt(attacker, "alice", PASSWORD)  # even the right password, for now
        assert locked.status_code == 429
        assert locked.json()["error"] == "too_many_attempts"
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert locked.headers["retry-after"] == str(locked.json()["retry_after"])
        # Only that client, only for that account: alice herself and bob sign in.
        assert (await attempt(owner, "alice", PASSWORD)).status_code == 200
        assert (await attempt(attacker, "bob", PASSWORD)).status_code == 200
        # The same answer for a name that does not exist, once it has been guessed at as much.
        for _ in range(4):
            await attempt(attacker, "nobody", "wrong guess")
        assert (await attempt(attacker, "nobody", "wrong guess")).status_code == 429


async def test_the_lock_ends_and_backs_off_exponentially(
    start_app: StartApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    conn = await asyncpg.connect(database_url)
    try:
        async with start_app(throttle_account_failures=3) as app, client_at(app, ATTACKER) as c:
            lockouts = []
            for _ in range(3):
                for _ in range(3):
                    assert (await attempt(c, "alice", "wrong guess")).status_code == 401
                left = await conn.fetchval(
                    "SELECT extract(epoch FROM locked_until - now()) FROM login_throttle "
                    "WHERE key LIKE 'client:%'"
                )
                lockouts.append(round(left / 60))
                assert (await attempt(c, "alice", PASSWORD)).status_code == 429
                await expire_locks(database_url, "client:%")
            assert lockouts == [1, 2, 4]  # minutes: doubled at each lockout
            assert (await attempt(c, "alice", PASSWORD)).status_code == 200
        left_over = await conn.fetchval(
            "SELECT count(*) FROM login_throttle WHERE key LIKE 'client:%'"
        )
        assert left_over == 0  # a success starts the client afresh
    finally:
        await conn.close()


async def test_an_address_has_its_own_higher_limit(start_app: StartApp, database_url: str) -> None:
    await create_user(database_url, "alice")
    async with (
        start_app(throttle_address_failures=12) as app,
        client_at(app, ATTACKER) as attacker,
        client_at(app, OWNER) as owner,
    ):
        for i in range(12):  # 12 different names: below every account's limits
            assert (await attempt(attacker, f"name-{i}", "wrong guess")).status_code == 401
        assert (await attempt(attacker, "alice", PASSWORD)).status_code == 429
        assert (await attempt(owner, "alice", PASSWORD)).status_code == 200
        # Refused attempts cost no hashing and leave no row behind: a flood of made-up
        # names from a locked address does not grow the table.
        rows = await count_rows(database_url)
        for i in range(20):
            assert (await attempt(attacker, f"flood-{i}", "wrong guess")).status_code == 429
        assert await count_rows(database_url) == rows


async def test_ipv6_clients_are_counted_by_their_64(start_app: StartApp, database_url: str) -> None:
    """Cycling through the addresses of one /64 (a subscriber's usual allocation) gains
    nothing."""
    await create_user(database_url, "alice")
    async with start_app(throttle_account_failures=4) as app:
        for i in range(4):
            async with client_at(app, f"2001:db8:1:2::{i + 1:x}") as c:
                assert (await attempt(c, "alice", "wrong guess")).status_code == 401
        async with client_at(app, "2001:db8:1:2:ffff::1") as same_64:
            assert (await attempt(same_64, "alice", PASSWORD)).status_code == 429
        async with client_at(app, "2001:db8:1:3::1") as other_64:
            assert (await attempt(other_64, "alice", PASSWORD)).status_code == 200


@pytest.mark.parametrize("spread", ["one client", "a client per guess"])
async def test_parallel_guesses_are_counted_before_any_is_hashed(
    start_app: StartApp, database_url: str, spread: str
) -> None:
    """200 guesses at once against a limit of 10: at most 10 passwords are evaluated, with
    the real argon2id workers, whether from one address or from 200."""
    await create_user(database_url, "alice")
    # 200 requests share 10 pooled connections and queue on the counters' row locks: on a
    # busy machine some wait longer for a connection than AUTH_DB_TIMEOUT_SECONDS, and a
    # 503 would hide what this test counts.
    async with start_app(
        throttle_account_budget=10, throttle_address_failures=1000, db_timeout_seconds=60
    ) as app:

        async def guess(i: int, password: str) -> int:
            address = ATTACKER if spread == "one client" else f"198.51.100.{i}"
            async with client_at(app, address) as c:
                return (await attempt(c, "alice", password)).status_code

        guesses = [guess(i, f"guess number {i}") for i in range(199)]
        statuses = await asyncio.gather(*guesses, guess(199, PASSWORD))
    evaluated = statuses.count(401) + statuses.count(200)
    assert evaluated <= 10, statuses
    assert statuses.count(429) >= 190
    conn = await asyncpg.connect(database_url)
    try:
        hashed = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'login' AND outcome <> 'throttled'"
        )
    finally:
        await conn.close()
    assert hashed == evaluated


async def test_an_account_attacked_from_many_addresses_is_slowed_not_locked(
    start_app: StartApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    async with start_app(throttle_account_budget=5) as app:
        address = iter(f"198.51.100.{i}" for i in range(1, 250))

        async def from_new_address(password: str) -> httpx.Response:
            async with client_at(app, next(address)) as c:
                return await attempt(c, "alice", password)

        for _ in range(5):  # one guess per address: no client reaches its own limit
            assert (await from_new_address("wrong guess")).status_code == 401
        first_slot = await from_new_address(PASSWORD)
        assert first_slot.status_code == 429
        assert 1 <= int(first_slot.headers["retry-after"]) <= 60
        # Slowed: one attempt per slot, the slots twice as far apart each time.
        await expire_locks(database_url, "account:%")
        assert (await from_new_address("wrong guess")).status_code == 401
        second_slot = await from_new_address(PASSWORD)
        assert second_slot.status_code == 429
        assert 60 < int(second_slot.headers["retry-after"]) <= 120
        # Any slot may be the owner's.
        await expire_locks(database_url, "account:%")
        assert (await from_new_address(PASSWORD)).status_code == 200


async def form_sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """The browser's way: the login page, then its form, with the client's cookie jar."""
    page = await client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    assert match
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": match.group(1), "rd": ""},
    )


def set_cookie(response: httpx.Response, name: str) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header


async def test_a_browser_that_signed_in_before_keeps_signing_in_during_an_attack(
    start_app: StartApp, database_url: str
) -> None:
    """OWASP's device cookies: neither an attack on the account from many addresses nor one
    from the owner's own (shared) address stops the browser that signed in before."""
    await create_user(database_url, "alice")
    await create_user(database_url, "bob")
    async with (
        start_app(
            throttle_account_failures=3, throttle_account_budget=5, throttle_address_failures=8
        ) as app,
        client_at(app, OWNER) as browser,
        client_at(app, OWNER) as other_browser,
    ):
        signed_in = await form_sign_in(browser, "alice", PASSWORD)
        assert signed_in.status_code == 303
        cookie = set_cookie(signed_in, "auth_device")
        assert "Path=/login" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Domain" not in cookie and "Max-Age=7776000" in cookie
        # The attack: alice's account from 5 addresses (its budget), then a flood of
        # made-up names from the owner's own address (a shared NAT) until it is locked.
        for i in range(5):
            async with client_at(app, f"198.51.100.{i}") as c:
                assert (await attempt(c, "alice", "wrong guess")).status_code == 401
        for i in range(8):
            assert (await attempt(other_browser, f"name-{i}", "wrong guess")).status_code == 401
        assert (await form_sign_in(other_browser, "alice", PASSWORD)).status_code == 429
        async with client_at(app, "198.51.100.200") as fresh:
            assert (await attempt(fresh, "alice", PASSWORD)).status_code == 429
        # The browser with the device cookie goes straight in, and gets a new cookie.
        again = await form_sign_in(browser, "alice", PASSWORD)
        assert again.status_code == 303
        assert set_cookie(again, "auth_device") != cookie
        # The cookie names alice: for bob, from the locked address, it counts for nothing.
        assert (await form_sign_in(browser, "bob", PASSWORD)).status_code == 429
        # A stolen cookie buys no more guesses than one client has.
        for _ in range(3):
            assert (await form_sign_in(browser, "alice", "wrong guess")).status_code == 401
        assert (await form_sign_in(browser, "alice", PASSWORD)).status_code == 429


async def test_the_json_login_issues_and_honours_its_own_device_cookie(
    start_app: StartApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    async with (
        start_app(throttle_account_failures=3, throttle_account_budget=5) as app,
        client_at(app, OWNER) as api,
    ):
        first = await attempt(api, "alice", PASSWORD)
        assert first.status_code == 200
        cookie = set_cookie(first, "auth_device")
        assert "Path=/api/v1/auth/login" in cookie and "HttpOnly" in cookie
        for i in range(5):
            async with client_at(app, f"198.51.100.{i}") as c:
                await attempt(c, "alice", "wrong guess")
        async with client_at(app, OWNER) as without_cookie:
            assert (await attempt(without_cookie, "alice", PASSWORD)).status_code == 429
        assert (await attempt(api, "alice", PASSWORD)).status_code == 200  # the jar's cookie
        forged = {"auth_device": api.cookies["auth_device"][:-4] + "AAAA"}
        async with client_at(app, OWNER, cookies=forged) as forger:
            assert (await attempt(forger, "alice", PASSWORD)).status_code == 429


async def test_the_form_login_is_throttled_too(start_app: StartApp, database_url: str) -> None:
    await create_user(database_url, "alice")
    async with start_app(throttle_account_failures=3) as app, client_at(app, ATTACKER) as c:
        for _ in range(3):
            await attempt(c, "alice", "wrong guess")
        response = await form_sign_in(c, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text
    assert "retry-after" in response.headers


async def test_metrics_show_the_locks_in_force_by_scope(
    start_app: StartApp, database_url: str
) -> None:
    await create_user(database_url, "alice")
    async with (
        start_app(
            throttle_account_failures=3, throttle_account_budget=3, throttle_address_failures=5
        ) as app,
        client_at(app, ATTACKER) as attacker,
    ):
        for i in range(5):  # 3 for alice (client and account budget), 2 made-up names
            await attempt(attacker, "alice" if i < 3 else f"name-{i}", "wrong guess")
        text = (await attacker.get("/metrics")).text
    found = dict(re.findall(r'^auth_login_locked\{scope="(\w+)"\} (\S+)$', text, re.M))
    assert found == {"client": "1.0", "address": "1.0", "account": "1.0", "device": "0.0"}


async def test_stale_counters_are_purged(database_url: str) -> None:
    policy = throttle.ThrottlePolicy(10, 100, 50, window=900, base_lockout=60, max_lockout=3600)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES
                ('address:stale', 3, now() - interval '2 hours', NULL),
                ('account:stale', 0, now() - interval '2 hours', now() - interval '61 minutes'),
                ('account:slowed', 0, now() - interval '2 hours', now() - interval '10 minutes'),
                ('client:counting', 2, now() - interval '1 minute', NULL)
            """
        )
        assert await throttle.purge_stale(conn, policy) == 2
        left = {r["key"] for r in await conn.fetch("SELECT key FROM login_throttle")}
    finally:
        await conn.close()
    assert left == {"account:slowed", "client:counting"}


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


async def test_correct_logins_of_one_account_at_once_never_deadlock(database_url: str) -> None:
    """Many correct logins of one account from one client at once: each charges its counters
    (admit) and gives the charge back (give_back) while others charge the same rows. Both
    must take the rows in one order, or PostgreSQL kills one of two waiting for each other
    (DeadlockDetectedError, answered as a 503 "database unavailable" to a person who typed
    the right password)."""
    policy = throttle.ThrottlePolicy(
        10_000, 10_000, 10_000, window=900, base_lockout=60, max_lockout=3600
    )
    counters = throttle.counters_for(policy, account="dora", address=OWNER, device=None)
    assert len({c.scope for c in counters}) == 3  # account, client, address: shared rows
    pool = await asyncpg.create_pool(database_url, min_size=16, max_size=16)
    assert pool is not None

    async def sign_in_repeatedly() -> None:
        for _ in range(15):
            async with pool.acquire() as conn:
                admission = await throttle.admit(conn, counters, policy)
            assert admission.retry_after == 0
            await throttle.give_back(pool, counters)

    try:
        outcomes = await asyncio.gather(
            *(sign_in_repeatedly() for _ in range(16)), return_exceptions=True
        )
    finally:
        await pool.close()
    assert [o for o in outcomes if o is not None] == []
