"""What an attacker sends, through the shipped Traefik, nginx and Caddy files (issue 16).

One auth-service with the README's example rules, one echo upstream, and the three proxies
in front of them, started once for the module. Requests go out as raw bytes, so that nothing
tidies a path on the client side; the echo upstream says what it actually received.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import httpx
import pytest

from ..conftest import (
    PASSWORD,
    Served,
    cli_env,
    create_user,
    drop_database,
    free_port,
    new_database,
    start_served,
    stop_process,
    stop_proxy,
)
from .conftest import (
    Stack,
    _start_caddy,
    _start_nginx,
    _start_traefik,
    start_echo,
    wait_for_routes,
)

RULES = """
[[rules]]
id = "admin-site"
host = "admin.demo.localhost"
path = "/**"
groups = ["admins"]

[[rules]]
id = "public"
path = "/public/**"
allow = "anonymous"

[[rules]]
id = "admin-only"
path = "/admin/**"
groups = ["admins"]

[[rules]]
id = "ops"
path = "/ops/**"
groups = ["ops"]
"""
# Who may reach each protected prefix of app.demo.localhost, and who we ask as.
PROTECTED = {"/admin": {"root"}, "/ops": {"opsy"}}
CALLERS = (None, "alice", "root", "opsy")
GROUPS = {"alice": (), "root": ("admins",), "opsy": ("ops",)}
FORGED_ID = "forged-id-0123456789"


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]  # by lower-case name
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


def send_raw(port: int, request_line: str, host: str, body: bytes = b"", **headers: str) -> Answer:
    """One request, its request line and headers sent exactly as given ("_" in a header's
    keyword becomes "-")."""
    lines = [request_line, f"Host: {host}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.setdefault(name.strip().lower(), []).append(value.strip())
    if parsed.get("transfer-encoding") == ["chunked"]:
        body = _unchunk(body)
    return Answer(int(status_line.split(" ")[1]), parsed, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


@dataclass
class Guarded:
    """A proxy in front of the echo upstream, asking the module's auth-service."""

    stack: Stack
    tokens: dict[str, str]

    @property
    def port(self) -> int:
        return self.stack.port

    def get(self, target: str, who: str | None = None, host: str = "app", **headers: str) -> Answer:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return send_raw(
            self.port, f"GET {target} HTTP/1.1", f"{host}.demo.localhost:{self.port}", **headers
        )


async def _new_database(server_url: str) -> str:
    url = await new_database(server_url)
    for user, groups in GROUPS.items():
        await create_user(url, user, groups=groups)
    return url


def _admin_site_too_traefik(dynamic: dict[str, Any]) -> None:
    dynamic["http"]["routers"]["app"]["rule"] = (
        "Host(`app.demo.localhost`) || Host(`admin.demo.localhost`)"
    )


def _admin_site_too_nginx(site: str) -> str:
    return site.replace(
        "server_name app.demo.localhost;", "server_name app.demo.localhost admin.demo.localhost;"
    )


@pytest.fixture(scope="module")
def auth(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("auth")
    database = asyncio.run(_new_database(server_url))
    (folder / "rules.toml").write_text(RULES)
    env = cli_env(
        AUTH_DATABASE_URL=database,
        AUTH_CONFIG=str(folder / "rules.toml"),
        AUTH_PUBLIC_URL="http://auth.demo.localhost",
        AUTH_COOKIE_SECURE="false",
        AUTH_LOG_LEVEL="DEBUG",
    )
    served = start_served(folder, env)
    try:
        yield served
    finally:
        served.stop()
        asyncio.run(drop_database(server_url, database))


@pytest.fixture(scope="module")
def proxies(auth: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Guarded]]:
    """Traefik, nginx and Caddy on the shipped files; Traefik and nginx also route
    admin.demo.localhost (a second protected site) to the upstream."""
    folder = tmp_path_factory.mktemp("proxies")
    echo, echo_port = start_echo(folder)
    tokens = {}
    for user in GROUPS:
        answer = httpx.post(
            auth.url + "/api/v1/auth/login", json={"username": user, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        tokens[user] = answer.json()["access_token"]
    started = []
    try:
        guarded = {}
        for kind, start, edit in (
            ("traefik", _start_traefik, _admin_site_too_traefik),
            ("nginx", _start_nginx, _admin_site_too_nginx),
            ("caddy", _start_caddy, None),
        ):
            port = free_port()
            (folder / kind).mkdir()
            extra = (edit,) if edit else ()
            started.append(start(folder / kind, port, auth.port, echo_port, *extra))  # type: ignore[operator]
            stack = Stack(kind, port, auth)
            wait_for_routes(stack)
            guarded[kind] = Guarded(stack, tokens)
        yield guarded
    finally:
        for process in started:
            stop_proxy(process)
        stop_process(echo)


@pytest.fixture(params=["traefik", "nginx", "caddy"])
def proxy(request: pytest.FixtureRequest, proxies: dict[str, Guarded]) -> Guarded:
    return proxies[request.param]


@pytest.fixture(params=["traefik", "nginx"])
def routing_proxy(request: pytest.FixtureRequest, proxies: dict[str, Guarded]) -> Guarded:
    """The proxies whose files this module's findings changed (H1, L6): they route a second
    site here, and their login host passes only the public paths."""
    return proxies[request.param]


def upstream_views(received: str) -> set[str]:
    """The paths an upstream might serve for the raw path it received: as is, decoded once,
    and read leniently (decoded until stable, '\\' as '/', ';' parameters dropped, empty and
    dot segments resolved), as servlet containers and friends have done."""
    raw = received.partition("?")[0]
    lenient = raw
    for _ in range(3):
        lenient = unquote(lenient)
    segments: list[str] = []
    for segment in lenient.replace("\\", "/").split("/"):
        segment = segment.split(";")[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            segments = segments[:-1]
            continue
        segments.append(segment)
    return {raw, unquote(raw), "/" + "/".join(segments)}


def protected_prefix(path: str) -> str | None:
    for prefix in PROTECTED:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


# The attack paths and their relatives, sent raw.
ATTACKS = [
    "/admin/..;/public/x",
    "/admin%2f..%2fpublic/x",
    "/admin/x/..%5c..%5cpublic/x",
    "/admin//../public/x",
    "/admin/;/../public/x",
    "/public/../admin/x",
    "/public/..;/admin/x",
    "/public/%2e%2e/admin/x",
    "/public/.%2E/admin/x",
    "/public%2F..%2Fadmin/x",
    "/public/..%5Cadmin/x",
    "/public\\..\\admin\\x",
    "/public/%252e%252e/admin/x",
    "/public//..//admin/x",
    "/%61dmin/x",
    "/admin;x=1/users",
    "/admin%3Bx/users",
    "//admin/x",
    "/ops/..;/panel",
    "/ops/..;/public/x",
    "/public/..;/ops/panel",
    "/o%70s/panel",
]


def test_no_spelling_reaches_a_protected_prefix_without_its_decision(proxy: Guarded) -> None:
    refused = []
    for path in ATTACKS:
        for who in CALLERS:
            answer = proxy.get(path, who)
            if answer.status != 200:
                assert answer.status in (400, 401, 403), (path, who, answer)
                if answer.status == 400:
                    assert answer.json()["error"] == "invalid_request", (path, answer.body)
                    refused.append(path)
                continue
            received = answer.json()["path"]
            for view in upstream_views(received):
                prefix = protected_prefix(view)
                assert prefix is None or who in PROTECTED[prefix], (path, who, received, view)
    # nginx and Caddy forward every spelling as it came, so each one is refused; Traefik
    # cleans ".", ".." and "//" itself (the upstream gets the cleaned path, which validate
    # decided on) but keeps "..;", "%2F" and "%5C", which are refused.
    if proxy.stack.kind in ("nginx", "caddy"):
        assert set(refused) == set(ATTACKS)
    else:
        assert {"/admin/..;/public/x", "/admin%2f..%2fpublic/x", "/ops/..;/panel"} <= set(refused)
        assert {"/admin/x/..%5c..%5cpublic/x", "/public\\..\\admin\\x"} <= set(refused)


@pytest.mark.parametrize(
    ("path", "who", "status"),
    [
        ("/public/x", None, 200),
        ("/public/caf%C3%A9%20menu", None, 200),
        ("/admin/x", None, 401),
        ("/admin/x", "alice", 403),
        ("/admin/x", "root", 200),
        ("/ops/panel", "alice", 403),
        ("/ops/panel", "opsy", 200),
        ("/anything", "alice", 200),
    ],
)
def test_canonical_paths_get_their_rule_and_reach_the_upstream_as_sent(
    proxy: Guarded, path: str, who: str | None, status: int
) -> None:
    answer = proxy.get(path + "?q=/../x", who)
    assert answer.status == status, answer
    if status == 200:
        assert answer.json()["path"] == path + "?q=/../x"


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("alice", 403), ("root", 200)])
def test_the_host_judged_is_the_host_the_proxy_routed_on(
    routing_proxy: Guarded, who: str | None, status: int
) -> None:
    # An absolute-form request line names the admin site; the Host header names app, where
    # /public/** is anonymous. The proxy routes by the request line (RFC 9112 3.2.2), so the
    # admin site's rule must decide.
    headers = {"Authorization": f"Bearer {routing_proxy.tokens[who]}"} if who else {}
    target = f"http://admin.demo.localhost:{routing_proxy.port}/public/x"
    answer = send_raw(
        routing_proxy.port,
        f"GET {target} HTTP/1.1",
        f"app.demo.localhost:{routing_proxy.port}",
        **headers,
    )
    assert answer.status == status, answer
    if status == 200:
        assert dict(answer.json()["headers"])["Host"].startswith("admin.demo.localhost")


def test_the_login_redirect_keeps_the_port_of_the_host(routing_proxy: Guarded) -> None:
    answer = routing_proxy.get("/private", host="admin", Accept="text/html")
    location = answer.header("location")
    assert answer.status == 302 and location, answer
    assert parse_qs(urlsplit(location).query)["rd"] == [
        f"http://admin.demo.localhost:{routing_proxy.port}/private"
    ]


def test_a_forged_request_id_reaches_neither_the_upstream_nor_our_logs(
    proxy: Guarded, auth: Served
) -> None:
    database = auth.env["AUTH_DATABASE_URL"]
    logged_before, audited_before = len(auth.log_text()), asyncio.run(_audited(database))
    allowed = proxy.get("/anything", "alice", X_Request_Id=FORGED_ID)
    assert allowed.status == 200
    seen = [v for name, v in allowed.json()["headers"] if name.lower() == "x-request-id"]
    assert len(seen) == 1 and seen[0] != FORGED_ID
    refused = proxy.get("/anything", X_Request_Id=FORGED_ID)
    assert refused.status == 401
    assert FORGED_ID not in json.dumps(refused.headers) + refused.body.decode()
    # auth-service's own pages: a failed login is logged and audited with the request id.
    login = send_raw(
        proxy.port,
        "POST /api/v1/auth/login HTTP/1.1",
        f"auth.demo.localhost:{proxy.port}",
        body=json.dumps({"username": "alice", "password": "not the password"}).encode(),
        X_Request_Id=FORGED_ID,
        Content_Type="application/json",
    )
    assert login.status == 401, login
    assert login.header("x-request-id") not in (None, FORGED_ID)
    audited = asyncio.run(_audited(database))[len(audited_before) :]
    assert login.header("x-request-id") in audited and FORGED_ID not in audited
    assert FORGED_ID not in auth.log_text()[logged_before:]


async def _audited(database: str) -> list[str]:
    """The request ids of the audit trail, oldest first."""
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT request_id FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    return [row["request_id"] for row in rows]


def test_huge_requests_are_refused_before_they_cost_anything(proxy: Guarded) -> None:
    # A 20 KB path: nginx refuses a request line over its 8 KB buffer itself; Traefik passes
    # it on and auth-service answers 414 unread. Cookies over 16 KB: nginx's 400 for a
    # header line over 8 KB, auth-service's 431 through Traefik; over the 64 KiB of the
    # shipped maxHeaderBytes, Traefik's own 431.
    long_uri = proxy.get("/public/" + "a" * 20_000)
    assert long_uri.status == 414, long_uri
    big_cookie = proxy.get("/public/x", Cookie="; ".join(f"c{i}=v" for i in range(4000)))
    assert big_cookie.status in (400, 431), big_cookie
    if proxy.stack.kind == "traefik":
        assert long_uri.json()["error"] == "invalid_request"
        assert big_cookie.json()["error"] == "invalid_request"
        assert proxy.get("/public/x", X_Junk="a" * 100_000).status == 431


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/health",
        "/health/live",
        "/health/ready",
        "/openapi.json",
        "/api/v1/auth/validate",
        "/metrics/",
        "/%6detrics",
        "/login/../metrics",
        "/./metrics",
        "//metrics",
        "/login/..%2Fmetrics",
    ],
)
def test_internal_endpoints_are_not_reachable_through_the_auth_host(
    routing_proxy: Guarded, path: str
) -> None:
    answer = routing_proxy.get(path, host="auth")
    assert answer.status in (400, 404), (path, answer)
    assert b"auth_validate" not in answer.body and b"openapi" not in answer.body


def test_the_login_pages_api_and_keys_stay_reachable(routing_proxy: Guarded) -> None:
    for path in ("/", "/login", "/logout", "/.well-known/jwks.json"):
        assert routing_proxy.get(path, host="auth").status == 200, path
    login = send_raw(
        routing_proxy.port,
        "POST /api/v1/auth/login HTTP/1.1",
        f"auth.demo.localhost:{routing_proxy.port}",
        body=json.dumps({"username": "alice", "password": PASSWORD}).encode(),
        Content_Type="application/json",
    )
    assert login.status == 200, login
    assert login.json()["token_type"] == "Bearer"
