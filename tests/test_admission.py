"""The admission queue in front of the hashing threads (issue 14, item 4): logins beyond what
the threads can serve within a few seconds are refused at once with 503 and Retry-After, the
queue never grows past its bound, and the hashes run below validate's priority."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from auth_service.admission import HashingQueue
from auth_service.app import AuthServiceApp, create_app
from auth_service.errors import LoginOverloaded
from auth_service.settings import Settings

from .conftest import PASSWORD, Served, create_user

LOGIN = "/api/v1/auth/login"
VALIDATE = "/api/v1/auth/validate"
# One account, one address, many attempts at once: the throttle would count them first.
NO_THROTTLE = {
    "AUTH_THROTTLE_ACCOUNT_FAILURES": "1000",
    "AUTH_THROTTLE_ACCOUNT_BUDGET": "100000",
    "AUTH_THROTTLE_ADDRESS_FAILURES": "100000",
}


def refusals() -> float:
    return REGISTRY.get_sample_value("auth_login_attempts_total", {"outcome": "overloaded"}) or 0


@contextmanager
def held_threads(threads: int) -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """An executor whose work blocks until the event is set (set at exit)."""
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        try:
            yield executor, release
        finally:
            release.set()


async def test_a_full_queue_refuses_at_once_and_never_grows() -> None:
    queue = HashingQueue(threads=1, size=2, max_wait=30, hash_seconds=0.1)
    before = refusals()
    with held_threads(1) as (executor, release):
        running = asyncio.ensure_future(queue.run(executor, release.wait))
        waiting = [asyncio.ensure_future(queue.run(executor, release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert (queue.running, queue.waiting) == (1, 2)
        started = time.monotonic()
        for _ in range(5):
            with pytest.raises(LoginOverloaded) as refused:
                await queue.run(executor, release.wait)
            assert refused.value.retry_after >= 1
        assert time.monotonic() - started < 0.5  # at once, not after a wait
        assert queue.waiting == 2
        assert refusals() - before == 5
        release.set()
        assert await asyncio.gather(running, *waiting) == [True, True, True]
    assert (queue.running, queue.waiting) == (0, 0)


async def test_a_login_that_would_wait_too_long_is_refused_before_the_queue_is_full() -> None:
    # Each hash is known to take 2 s: the first waiter starts in 2 s (within 3), the next in 4.
    queue = HashingQueue(threads=1, size=10, max_wait=3, hash_seconds=2)
    with held_threads(1) as (executor, release):
        tasks = [asyncio.ensure_future(queue.run(executor, release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(LoginOverloaded) as refused:
            queue.check_room()
        assert refused.value.retry_after == 4  # the time the queue needs to drain
        release.set()
        await asyncio.gather(*tasks)


async def test_no_login_waits_longer_than_the_bound() -> None:
    queue = HashingQueue(threads=1, size=10, max_wait=0.3, hash_seconds=0.01)
    with held_threads(1) as (executor, release):
        running = asyncio.ensure_future(queue.run(executor, release.wait))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(LoginOverloaded):
            await queue.run(executor, release.wait)
        assert 0.25 < time.monotonic() - started < 2
        assert queue.waiting == 0
        release.set()
        await running


async def test_a_cancelled_login_keeps_its_thread_until_the_hash_ends() -> None:
    queue = HashingQueue(threads=1, size=0, max_wait=5, hash_seconds=0.01)
    with held_threads(1) as (executor, release):
        first = asyncio.ensure_future(queue.run(executor, release.wait))
        await asyncio.sleep(0.05)
        first.cancel()  # the client went away; its hash still runs in the thread
        await asyncio.sleep(0.05)
        assert queue.running == 1
        with pytest.raises(LoginOverloaded):
            queue.check_room()
        release.set()
        await asyncio.sleep(0.1)
        assert queue.running == 0
        queue.check_room()


def keep_the_loop_busy(seconds: float) -> None:
    """Spend ``seconds`` of the event loop's thread on the CPU, as validate under load does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_after_a_hash_beside_a_busy_loop_the_thread_rests_before_the_next() -> None:
    queue = HashingQueue(threads=1, size=0, max_wait=5, hash_seconds=0.3, yield_factor=1)
    with ThreadPoolExecutor(max_workers=1) as executor:
        login = asyncio.ensure_future(queue.run(executor, time.sleep, 0.3))
        await asyncio.sleep(0.01)  # the hash has started
        keep_the_loop_busy(0.4)  # the loop is on the CPU for the whole hash
        await login  # the login's answer does not wait for the rest
        answered = time.monotonic()
        assert queue.running == 1  # the thread rests: the next login finds none free
        with pytest.raises(LoginOverloaded):
            queue.check_room()
        while queue.running:
            await asyncio.sleep(0.01)
        # about the hash's time (0.4 s of it beside the busy loop), its own rest included
        assert 0.2 < time.monotonic() - answered < 1.5
        assert queue.hash_seconds > 0.3  # the estimate admission uses counts the rest
        queue.check_room()


async def test_after_a_hash_beside_an_idle_loop_the_thread_is_free_at_once() -> None:
    queue = HashingQueue(threads=1, size=0, max_wait=5, hash_seconds=0.3, yield_factor=1)
    with ThreadPoolExecutor(max_workers=1) as executor:
        await queue.run(executor, time.sleep, 0.3)  # the loop waits, idle
        await asyncio.sleep(0.05)
        assert queue.running == 0
        queue.check_room()


async def test_with_no_yield_factor_the_thread_never_rests() -> None:
    queue = HashingQueue(threads=1, size=0, max_wait=5, hash_seconds=0.3)
    with ThreadPoolExecutor(max_workers=1) as executor:
        login = asyncio.ensure_future(queue.run(executor, time.sleep, 0.2))
        await asyncio.sleep(0.01)
        keep_the_loop_busy(0.3)
        await login
        await asyncio.sleep(0)
        assert queue.running == 0
        queue.check_room()


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[AuthServiceApp]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


async def test_json_and_form_logins_get_503_with_retry_after_while_the_threads_are_busy(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    await create_user(database_url, "alice")
    settings = make_settings(password_hash_workers=1, login_queue_size=0, cookie_secure=False)
    credentials = {"username": "alice", "password": PASSWORD}
    async with started(settings) as app:
        assert app.runtime is not None
        queue = app.runtime.passwords.queue
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            page = await client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
            assert token is not None
            with held_threads(1) as (executor, release):
                busy = asyncio.ensure_future(queue.run(executor, release.wait))
                await asyncio.sleep(0.05)
                response = await client.post(
                    LOGIN, json={"username": "alice", "password": PASSWORD}
                )
                assert response.status_code == 503
                assert int(response.headers["retry-after"]) >= 1
                body = response.json()
                assert body["error"] == "service_unavailable"
                assert body["retry_after"] == int(response.headers["retry-after"])
                assert body["request_id"] == response.headers["x-request-id"]
                # Refused before anything reads the body: not even a body we would refuse.
                unread = await client.post(
                    LOGIN, content=b"x" * 100, headers={"Content-Type": "text/plain"}
                )
                assert unread.status_code == 503
                assert unread.json()["error"] == "service_unavailable"
                form = await client.post(
                    "/login",
                    data={"username": "alice", "password": PASSWORD, "csrf_token": token[1]},
                    headers={"Origin": "http://auth.test", "Accept": "text/html"},
                )
                assert form.status_code == 503
                assert form.headers["content-type"].startswith("text/html")
                assert int(form.headers["retry-after"]) >= 1
                assert "Too many people are signing in right now" in form.text
                release.set()
                await busy
            while queue.running:  # the thread rests a little: the loop was busy meanwhile
                await asyncio.sleep(0.01)
            # The threads are free again: the same login goes through.
            response = await client.post(LOGIN, json=credentials)
            assert response.status_code == 200


def _thread_nice(pid: int) -> dict[int, int]:
    """The nice value of every thread of process ``pid`` (Linux ``/proc``)."""
    nice = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nice[int(task.name)] = int(fields[16])  # field 19 of stat, counted after the name
    return nice


def test_a_login_flood_on_a_served_process_is_refused_at_once_and_validate_still_answers(
    database_url: str, serve: Callable[..., Served]
) -> None:
    # One account per client: many attempts at once on the counters of one account from one
    # client have ended in a PostgreSQL deadlock between the throttle's charge and return of
    # the same rows (a 503 "database unavailable"): a matter for throttle.py, not this test.
    names = ["alice", *(f"flood{n}" for n in range(12))]
    for name in names:
        asyncio.run(create_user(database_url, name))
    served = serve(
        AUTH_DATABASE_URL=database_url,
        AUTH_PASSWORD_HASH_WORKERS="1",
        AUTH_LOGIN_QUEUE_SIZE="2",
        AUTH_LOGIN_QUEUE_WAIT_SECONDS="5",
        **NO_THROTTLE,
    )
    credentials = {"username": "alice", "password": PASSWORD}
    token = httpx.post(served.url + LOGIN, json=credentials).json()["access_token"]
    stop = threading.Event()
    answers: list[tuple[int, float, httpx.Response]] = []
    depths: list[float] = []

    def flood(name: str) -> None:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            while not stop.is_set():
                started = time.monotonic()
                response = http.post(LOGIN, json={"username": name, "password": PASSWORD})
                answers.append((response.status_code, time.monotonic() - started, response))

    def watch_queue() -> None:
        with httpx.Client(base_url=served.url) as http:
            while not stop.is_set():
                text = http.get("/metrics").text
                depths.append(float(re.findall(r"^auth_login_queue_depth (\S+)$", text, re.M)[0]))
                time.sleep(0.01)

    threads = [threading.Thread(target=flood, args=(name,)) for name in names[1:]]
    threads.append(threading.Thread(target=watch_queue))
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            codes = [code for code, _, _ in answers]
            if codes.count(503) >= 20 and codes.count(200) >= 3:
                break
            time.sleep(0.1)
        nice = _thread_nice(served.process.pid)
        # Validate answers while every hashing thread is busy and logins queue.
        with httpx.Client(base_url=served.url, timeout=30) as http:
            for _ in range(50):
                response = http.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200
                assert response.headers["x-auth-user"] == "alice"
        signed_in_before = [code for code, _, _ in answers].count(200)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    codes = [code for code, _, _ in answers]
    assert set(codes) == {200, 503}, set(codes)
    assert codes.count(200) > signed_in_before or codes.count(200) >= 3  # logins progress
    refused = [(seconds, response) for code, seconds, response in answers if code == 503]
    assert len(refused) >= 20
    for _, response in refused:
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"] == "service_unavailable"
    # Refused at once: most in well under a hash's time, and none waited past the bound.
    assert sorted(seconds for seconds, _ in refused)[len(refused) // 2] < 0.5
    assert max(seconds for _, seconds, _ in answers) < 5 + 10
    assert depths and max(depths) <= 2  # the queue never grew past its bound
    metrics = httpx.get(served.url + "/metrics").text
    counted = re.findall(
        r'^auth_login_attempts_total\{outcome="overloaded"\} (\S+)$', metrics, re.M
    )
    assert float(counted[0]) == len(refused)
    # Logged, but one line a second at most, with the count since the line before.
    lines = [json.loads(line) for line in served.log_text().splitlines() if "refused" in line]
    logged = [line for line in lines if line.get("message", "").startswith("login refused")]
    assert logged and len(logged) < len(refused) / 2
    assert sum(line["refused"] for line in logged) <= len(refused)
    # The one hashing thread runs 10 nice levels below the event loop's thread.
    main = nice[served.process.pid]
    assert sorted(nice.values()).count(main + 10) == 1, nice
