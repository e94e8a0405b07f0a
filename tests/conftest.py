"""Shared fixtures: a real PostgreSQL, a fresh database per test, the app in its lifespan.

The server is the embedded PostgreSQL the product starts by default, in a fresh temporary
folder per session, unless ``AUTH_TEST_DATABASE_URL`` names another server. Each test gets its
own database cloned from a migrated template, so tests are isolated and can run in any order.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.db import apply_migrations
from auth_service.embedded import embedded_server
from auth_service.passwords import hash_password
from auth_service.settings import Settings
from auth_service.users import add_user

# One template a pytest-xdist worker: with AUTH_TEST_DATABASE_URL the workers share a server.
TEMPLATE_DB = "auth_test_template" + os.environ.get("PYTEST_XDIST_WORKER", "")
PASSWORD = "correct horse battery staple"
# The key-encryption key of every test service (made for the tests, like the passwords):
# with an external database the service refuses to start without one.
TEST_KEK = "dGVzdC1vbmx5IGtleS1lbmNyeXB0aW9uLWtleSAzMiE"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server with a migrated template database.

    The embedded server lives in a folder of its own (not under pytest's basetemp, which
    another pytest session on the machine may prune while this one runs).
    """
    folder = None
    server = None
    url = os.environ.get("AUTH_TEST_DATABASE_URL")
    if not url:
        folder = Path(tempfile.mkdtemp(prefix="auth-service-test-pg-"))
        server = embedded_server(folder)
        url = server.get_uri()

    async def prepare() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(with_database(url, TEMPLATE_DB))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    try:
        asyncio.run(prepare())
        yield url
    finally:
        if server is not None:
            server.cleanup()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


async def new_database(server_url: str, prefix: str = "t_") -> str:
    """The URL of a fresh, migrated database on ``server_url`` (a copy of the template)."""
    name = prefix + secrets.token_hex(6)
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await conn.close()
    return with_database(server_url, name)


@pytest.fixture
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for one test."""
    url = await new_database(server_url)
    yield url
    await drop_database(server_url, url)


async def drop_database(server_url: str, database_url: str) -> None:
    """Drop the database of ``database_url`` (if it still exists), closing its sessions."""
    name = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings for the test database, with overrides."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "public_url": "http://auth.test",
            "log_level": "DEBUG",
            "key_encryption_key": TEST_KEK,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AuthServiceApp]:
    """The application, started (lifespan entered) on the test database."""
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


@pytest.fixture
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``app`` from 127.0.0.1 (a trusted proxy address)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
        yield c


async def create_user(
    database: str, username: str, password: str = PASSWORD, groups: tuple[str, ...] = ()
) -> None:
    """Insert a user straight into the database (as ``auth-service user add`` does)."""
    conn = await asyncpg.connect(database)
    try:
        await add_user(conn, username, hash_password(password), list(groups))
    finally:
        await conn.close()


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the JSON endpoint and return the access token."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# -- served processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """An ``auth-service serve`` process on loopback."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, grace=20)


def stop_process(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stop_proxy(process: subprocess.Popen[bytes]) -> None:
    """Stop a proxy (Traefik, nginx, Caddy) at the end of a test. A proxy keeps no data, and
    Traefik's graceful stop waits about two seconds for idle connections: with over fifty
    Traefik stacks in the suite, that alone was two minutes of waiting for nothing."""
    stop_process(process, grace=0.3)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI or server subprocess: ours without AUTH_*, plus the test
    key-encryption key and ``extra`` (``AUTH_KEY_ENCRYPTION_KEY=""`` leaves it unset). A
    served process stops at once on SIGTERM: no proxy needs time to notice here, unless a
    test sets ``AUTH_SHUTDOWN_DELAY_SECONDS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env["AUTH_KEY_ENCRYPTION_KEY"] = TEST_KEK
    env["AUTH_SHUTDOWN_DELAY_SECONDS"] = "0"
    env.update(extra)
    return env


def auth_service_command() -> list[str]:
    """How to run the installed ``auth-service`` command of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("auth-service"))]


def run_cli(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``auth-service ARGS`` to completion, with ``cli_env(**env)``; its output as text."""
    return subprocess.run(
        [*auth_service_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=60,
    )


def start_served(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 60, port: int | None = None
) -> Served:
    """Start ``auth-service serve [args]`` (on ``port``, else a free one) and wait until
    ``/health/ready`` answers 200."""
    port = port or free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*auth_service_command(), "serve", "--port", str(port), *args],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, port, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"auth-service exited early:\n{served.log_text()}")
        try:
            if httpx.get(served.url + "/health/ready", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    served.stop()
    raise AssertionError(f"auth-service did not become ready:\n{served.log_text()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start served processes; every one is stopped at teardown."""
    started: list[Served] = []

    def start(*args: str, port: int | None = None, **env: str) -> Served:
        served = start_served(tmp_path, cli_env(**env), *args, port=port)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
