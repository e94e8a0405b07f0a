"""Real Chromium (Debian's, driven by Playwright) in front of real proxies and auth-service.

Each layout is a real Traefik or nginx (started by the helpers of ``tests/e2e/conftest.py``)
in front of the echo upstream, with ``auth-service serve`` behind its middleware, on a
database of its own; one per module and layout, since flows with users of their own do not
interfere. One Chromium serves a whole module, with a fresh context (no cookies) per test.

Playwright's synchronous API keeps an event loop marked as running while it is open, so
these tests are plain functions, and database work runs in a thread (``in_thread``).

``SCREENSHOTS_DIR``, when set, names the folder where the docker-compose layout's flows save
the README's pictures (``python docs/screenshot.py`` sets it to ``docs``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from ..conftest import (
    Served,
    cli_env,
    create_user,
    drop_database,
    free_port,
    new_database,
    start_served,
    stop_proxy,
)
from ..e2e.conftest import DEMO_DOMAIN, _start_nginx, _start_traefik, start_echo
from ..test_deploy import COMPOSE_FILE, environment, load_yaml

CHROMIUM = Path("/usr/bin/chromium")
# Names that only exist in these tests; Chromium resolves *.localhost to loopback by itself.
APP_HOST, AUTH_HOST = "app.example.test", "auth.example.test"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    f"--host-resolver-rules=MAP {APP_HOST} 127.0.0.1, MAP {AUTH_HOST} 127.0.0.1",
]
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
LAYOUTS = ["one-host", "two-hosts", "compose", "nginx"]

# The two-hosts layout has one access rule, for a refusal a signed-in person can meet.
STAFF_ONLY = "/staff/"
RULES = f"""
[[rules]]
id = "staff-only"
path = "{STAFF_ONLY}**"
groups = ["staff"]
"""

T = TypeVar("T")


def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a thread of its own (see the module docstring)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


@dataclass
class Layout:
    """Where a browser finds the protected application and the login pages."""

    name: str
    app_url: str  # the protected application's origin
    auth_url: str  # AUTH_PUBLIC_URL
    session_cookie: str  # the session cookie's name in this layout
    database_url: str
    auth: Served

    def app(self, path: str) -> str:
        return self.app_url + path

    def login(self, path: str = "/login") -> str:
        return self.auth_url + path


async def _create_database(server_url: str) -> str:
    url = await new_database(server_url, "browser_")
    await create_user(url, USERNAME)
    return url


def compose_settings() -> dict[str, str]:
    """auth-service's environment in docker-compose.yml (database and port set by caller)."""
    compose = load_yaml(COMPOSE_FILE)
    env = environment(compose["services"]["auth-service"])
    return {name: value for name, value in env.items() if name != "AUTH_DATABASE_URL"}


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def _one_host(port: int) -> tuple[dict[str, str], Callable[..., None]]:
    """App and login pages on one host (localhost, which Chromium treats as a secure
    context: Secure and __Host- cookies work over plain HTTP there)."""

    def adjust(dynamic: dict[str, Any], static: dict[str, Any]) -> None:
        routers = dynamic["http"]["routers"]
        routers["auth"]["rule"] = "Host(`localhost`) && (Path(`/login`) || Path(`/logout`))"
        routers["app"]["rule"] = "Host(`localhost`)"

    return {"AUTH_PUBLIC_URL": f"http://localhost:{port}"}, adjust


def _two_hosts(app_port: int, auth_port: int) -> tuple[dict[str, str], Callable[..., None]]:
    """An application host and a login host, each on a non-default port of its own."""

    def adjust(dynamic: dict[str, Any], static: dict[str, Any]) -> None:
        static["entryPoints"]["login"] = {"address": f"127.0.0.1:{auth_port}"}
        routers = dynamic["http"]["routers"]
        routers["auth"]["rule"] = f"Host(`{AUTH_HOST}`)"
        routers["auth"]["entryPoints"] = ["login"]
        routers["app"]["rule"] = f"Host(`{APP_HOST}`)"

    return {
        "AUTH_PUBLIC_URL": f"http://{AUTH_HOST}:{auth_port}",
        "AUTH_COOKIE_DOMAIN": "example.test",
        "AUTH_ALLOWED_REDIRECT_DOMAINS": ".example.test",
        "AUTH_COOKIE_SECURE": "false",  # plain HTTP on a name that is not localhost
    }, adjust


def _wait_until_routed(url: str) -> None:
    """Traefik loads its file provider in the background: wait until the host is routed
    (Traefik answers 404 for a host it has no route for yet)."""
    parts = urlsplit(url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{parts.port}/login", headers={"Host": parts.netloc}
            )
            if answer.status_code != 404:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no route to {url}")


@pytest.fixture(scope="module", params=LAYOUTS)
def layout(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, server_url: str
) -> Iterator[Layout]:
    """auth-service behind a real proxy, in one of the layouts."""
    name = request.param
    tmp = tmp_path_factory.mktemp(f"browser-{name}")
    database_url = in_thread(lambda: _create_database(server_url))
    processes: list[subprocess.Popen[bytes]] = []
    auth: Served | None = None
    try:
        echo, echo_port = start_echo(tmp)
        processes.append(echo)
        port = free_port()
        adjust = None
        if name == "one-host":
            settings, adjust = _one_host(port)
            app_url = f"http://localhost:{port}"
        elif name == "two-hosts":
            auth_port = free_port()
            settings, adjust = _two_hosts(port, auth_port)
            app_url = f"http://{APP_HOST}:{port}"
            (tmp / "rules.toml").write_text(RULES)
            settings["AUTH_CONFIG"] = str(tmp / "rules.toml")
        else:  # docker-compose.yml's settings, behind traefik/ or nginx/ as shipped
            settings = compose_settings()
            settings["AUTH_PUBLIC_URL"] = with_port(settings["AUTH_PUBLIC_URL"], port)
            app_url = f"http://app.{DEMO_DOMAIN}:{port}"
        auth = start_served(
            tmp, cli_env(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="INFO", **settings)
        )
        if name == "nginx":
            processes.append(_start_nginx(tmp, port, auth.port, echo_port))
        else:
            processes.append(_start_traefik(tmp, port, auth.port, echo_port, adjust=adjust))
        _wait_until_routed(settings["AUTH_PUBLIC_URL"])
        _wait_until_routed(app_url)
        secure = settings.get("AUTH_COOKIE_SECURE", "true") != "false"
        prefix = ("__Secure-" if "AUTH_COOKIE_DOMAIN" in settings else "__Host-") if secure else ""
        yield Layout(
            name,
            app_url,
            settings["AUTH_PUBLIC_URL"],
            prefix + "auth_session",
            database_url,
            auth,
        )
    finally:
        for process in reversed(processes):
            stop_proxy(process)
        if auth is not None:
            auth.stop()
        in_thread(lambda: drop_database(server_url, database_url))


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's Chromium, one per module (Playwright gives it a fresh profile)."""
    assert CHROMIUM.exists(), "Chromium is not installed (.ci/run installs it with apt-get)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile for one test: no cookies, no history."""
    context = chromium.new_context(viewport={"width": 900, "height": 700})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def screenshot(layout: Layout, page: Page, name: str) -> None:
    """Save the README's picture ``name`` when SCREENSHOTS_DIR is set (compose layout only:
    the demo's settings)."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder and layout.name == "compose":
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))
