"""The soak's load and its checks, against any served auth-service (``bench.soak`` starts
one; ``tests/test_soak.py`` runs a minute of it against the test suite's).

For the whole run, at once: validate with cached tokens (each client refreshes its token
halfway through its life), sessions from start to end (login, validate the new token: a
cache miss, refreshes each followed by a fresh validate, logout, the logged-out token
refused), 401 noise (no token, garbage, a forged signature, a wrong password), and a key
rotation at regular intervals. Every answer is checked against the one expected; anything
else is an error outcome. Every ``interval`` seconds a sample records the service's resident
memory, its pool (``/metrics``) and the connections PostgreSQL serves for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from .processes import resident_bytes

VALIDATE = "/api/v1/auth/validate"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
CACHED_CLIENTS = 4
SESSION_CLIENTS = 2
REFRESHES_PER_SESSION = 3
MIB = 1024 * 1024
_VALIDATE_ERRORS = 'auth_validate_requests_total{outcome="error"'
# The connections PostgreSQL serves to the service: every client backend on its database
# but the sampler's own (the key rotation runs between samples, never during one). The
# service holds the pool's connections and one more, its own, that LISTENs (``sync.py``).
LISTENER_CONNECTIONS = 1
_SERVER_CONNECTIONS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
"""


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the service, ``seconds`` into the run."""

    seconds: float
    rss_bytes: int
    pool_size: int
    pool_size_before: int  # read just before the server's count (the pool may grow between)
    pool_idle: int
    server_connections: int
    requests: int


@dataclass(slots=True)
class SoakResult:
    """What the run saw: answers by kind and status, the unexpected ones, the samples."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    rotations: int = 0
    validate_errors: float = 0.0  # auth_validate_requests_total{outcome="error"} at the end
    pool_max: int = 0

    def memory_growth_bytes(self) -> int:
        """The highest RSS of the run's second half over the highest of its first half:
        about 0 when memory levels off, half the growth when it grows steadily."""
        half = len(self.samples) // 2
        first = max(s.rss_bytes for s in self.samples[: max(half, 1)])
        return max(s.rss_bytes for s in self.samples[half:]) - first

    def leaked_connections(self) -> list[str]:
        """Samples where PostgreSQL served a connection the pool does not hold, or the pool
        outgrew its bound; the last sample is taken with the load stopped: all idle."""
        problems = [
            f"{s.seconds:.0f} s: pool {s.pool_size} (max {self.pool_max}), "
            f"server {s.server_connections}"
            for s in self.samples
            if not min(s.pool_size_before, s.pool_size)
            <= s.server_connections - LISTENER_CONNECTIONS
            <= max(s.pool_size_before, s.pool_size)
            or s.pool_size > self.pool_max
        ]
        last = self.samples[-1]
        if last.pool_idle != last.pool_size:
            problems.append(f"after the load: {last.pool_size - last.pool_idle} still in use")
        return problems


class _Soak:
    def __init__(
        self,
        client: httpx.AsyncClient,
        users: list[tuple[str, str]],
        intruder: tuple[str, str],
        result: SoakResult,
    ) -> None:
        self.client = client
        self.users = users
        self.intruder = intruder
        self.result = result
        self.stop = asyncio.Event()
        # argon2id maps 64 MiB for each hash and unmaps it after: an RSS sample taken during
        # a login would measure the hash, not the service. The sampler holds new logins and
        # waits for the running ones first.
        self.logins_open = asyncio.Event()
        self.logins_open.set()
        self.no_login_running = asyncio.Event()
        self.no_login_running.set()
        self._logins_running = 0

    async def quiet(self) -> None:
        """Hold new logins and wait (at most 30 s) until none runs."""
        self.logins_open.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await self.no_login_running.wait()

    @contextlib.asynccontextmanager
    async def login_slot(self) -> AsyncIterator[None]:
        """Around a login: wait while the sampler holds logins, and tell it when none runs."""
        await self.logins_open.wait()
        self._logins_running += 1
        self.no_login_running.clear()
        try:
            yield
        finally:
            self._logins_running -= 1
            if not self._logins_running:
                self.no_login_running.set()

    async def call(
        self, kind: str, expected: tuple[int, ...], method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        """One request; an answer other than ``expected`` (or none) is an error outcome."""
        try:
            response = await self.client.request(method, path, **kw)
        except httpx.HTTPError as e:
            self.result.errors.append(f"{kind}: {type(e).__name__}: {e}")
            return None
        self.result.outcomes[f"{kind} {response.status_code}"] += 1
        if response.status_code not in expected:
            self.result.errors.append(
                f"{kind}: {response.status_code}, expected {expected}: {response.text[:200]}"
            )
            return None
        return response

    async def login(self, kind: str, user: tuple[str, str]) -> dict[str, str] | None:
        credentials = {"username": user[0], "password": user[1]}
        async with self.login_slot():
            response = await self.call(kind, (200,), "POST", LOGIN, json=credentials)
        return response.json() if response is not None else None

    async def validate(self, kind: str, token: str, expected: int = 200) -> None:
        bearer = {"Authorization": f"Bearer {token}"}
        await self.call(kind, (expected,), "GET", VALIDATE, headers=bearer)

    async def refresh(self, kind: str, tokens: dict[str, str]) -> dict[str, str] | None:
        body = {"refresh_token": tokens["refresh_token"]}
        response = await self.call(kind, (200,), "POST", REFRESH, json=body)
        return response.json() if response is not None else None

    async def cached(self, number: int) -> None:
        """Validate one token again and again; refresh it halfway through its life."""
        tokens = await self.login("login", self.users[number % len(self.users)])
        while tokens is not None and not self.stop.is_set():
            renew_at = time.monotonic() + int(tokens["expires_in"]) / 2
            while time.monotonic() < renew_at and not self.stop.is_set():
                await self.validate("validate cached", tokens["access_token"])
            tokens = await self.refresh("refresh", tokens)

    async def sessions(self, number: int) -> None:
        """Sessions from login to logout, every new token validated once (a cache miss)."""
        user = self.users[number % len(self.users)]
        while not self.stop.is_set():
            tokens = await self.login("login", user)
            if tokens is None:
                await asyncio.sleep(1)
                continue
            await self.validate("validate fresh", tokens["access_token"])
            for _ in range(REFRESHES_PER_SESSION):
                renewed = await self.refresh("refresh", tokens)
                if renewed is None:
                    break
                tokens = renewed
                await self.validate("validate fresh", tokens["access_token"])
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            await self.call("logout", (200,), "POST", LOGOUT, headers=bearer)
            await self.validate("validate logged out", tokens["access_token"], 401)

    async def noise(self) -> None:
        """What a busy gate refuses all day: no token, garbage, a forged signature, and a
        wrong password now and then (an account of its own, so the throttle locks only it)."""
        forged = ".".join(
            base64.urlsafe_b64encode(part).rstrip(b"=").decode()
            for part in (b'{"alg":"ES256","typ":"at+jwt","kid":"x"}', b'{"sub":"1"}', b"sig")
        )
        rounds = 0
        while not self.stop.is_set():
            await self.call("noise: no token", (401,), "GET", VALIDATE)
            await self.validate("noise: garbage", secrets.token_urlsafe(40), 401)
            await self.validate("noise: forged", forged, 401)
            if rounds % 50 == 0:
                name, password = self.intruder
                body = {"username": name, "password": password + "-wrong"}
                # 429 once the throttle locks the intruder out of its account: expected.
                async with self.login_slot():
                    await self.call("noise: wrong password", (401, 429), "POST", LOGIN, json=body)
            rounds += 1
            await asyncio.sleep(0.01)


async def run_soak(
    base_url: str,
    pid: int,
    database_url: str,
    users: list[tuple[str, str]],
    intruder: tuple[str, str],
    *,
    seconds: float,
    interval: float,
    rotate_every: float,
    rotate: Callable[[], None],
    progress: Callable[[str], None] = lambda _: None,
) -> SoakResult:
    """Load the service at ``base_url`` (process ``pid``) for ``seconds``; see the module."""
    result = SoakResult()
    limits = httpx.Limits(max_connections=CACHED_CLIENTS + SESSION_CLIENTS + 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        soak = _Soak(client, users, intruder, result)
        conn = await asyncpg.connect(database_url)
        try:
            load = [asyncio.ensure_future(soak.cached(n)) for n in range(CACHED_CLIENTS)]
            load += [asyncio.ensure_future(soak.sessions(n)) for n in range(SESSION_CLIENTS)]
            load.append(asyncio.ensure_future(soak.noise()))
            started = time.monotonic()
            next_rotation = started + rotate_every
            tick = started
            while (now := time.monotonic()) < started + seconds:
                # Samples on a fixed cadence; one that had to wait for logins to end makes
                # the next ones skip the ticks it overran.
                while tick <= now:
                    tick += interval
                await asyncio.sleep(min(tick, started + seconds) - now)
                if time.monotonic() >= next_rotation:
                    await asyncio.to_thread(rotate)
                    result.rotations += 1
                    next_rotation += rotate_every
                await soak.quiet()
                sample = await _sample(client, conn, pid, time.monotonic() - started, result)
                soak.logins_open.set()
                progress(
                    f"{sample.seconds:4.0f} s  RSS {sample.rss_bytes / MIB:6.1f} MiB  "
                    f"pool {sample.pool_size} ({sample.pool_idle} idle)  "
                    f"server {sample.server_connections}  requests {sample.requests:,}  "
                    f"errors {len(result.errors)}"
                )
            soak.stop.set()
            await asyncio.gather(*load)
            await asyncio.sleep(0.5)
            await _sample(client, conn, pid, time.monotonic() - started, result)
            metrics = await _metrics(client)
            result.validate_errors = sum(
                value for name, value in metrics.items() if name.startswith(_VALIDATE_ERRORS)
            )
            result.pool_max = int(metrics["auth_db_pool_max_connections"])
        finally:
            await conn.close()
    return result


async def _metrics(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def _sample(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pid: int,
    seconds: float,
    result: SoakResult,
) -> Sample:
    before = await _metrics(client)
    server = int(await conn.fetchval(_SERVER_CONNECTIONS))
    metrics = await _metrics(client)
    sample = Sample(
        seconds,
        resident_bytes(pid),
        int(metrics["auth_db_pool_connections"]),
        int(before["auth_db_pool_connections"]),
        int(metrics["auth_db_pool_idle_connections"]),
        server,
        sum(result.outcomes.values()),
    )
    result.samples.append(sample)
    return sample
