"""Access rules: first match wins, on the canonical path, through the validate endpoint."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.cache import IDENTITY_HEADERS
from auth_service.config import RuleConfig
from auth_service.policy import compile_rules, decide, first_match
from auth_service.settings import Settings
from auth_service.tokens import issue_access_token
from auth_service.types import Identity, User

from .conftest import Served
from .spellings import NOT_CANONICAL

VALIDATE = "/api/v1/auth/validate"
RULES = """
[[rules]]
id = "health"
path = "/healthz"
allow = "anonymous"

[[rules]]
id = "public"
path = "/public/**"
allow = "anonymous"

[[rules]]
id = "blocked"
path = "/internal/**"
allow = "deny"

[[rules]]
id = "admin-only"
path = "/admin/**"
groups = ["admins"]

[[rules]]
id = "orders-write"
host = "*.example.com"
path = "/orders/*/items"
methods = ["POST", "PUT"]
scopes = ["orders:write"]

[[rules]]
id = "reports"
host = "reports.example.com"
path = "/**"
groups = ["finance", "admins"]

[[rules]]
id = "no-downloads"
path = "/downloads/**"
methods = ["GET"]
allow = "deny"

[[rules]]
id = "legacy"
path = "/Legacy/**"
case_sensitive = false
allow = "deny"

[[rules]]
id = "nested"
path = "/**/a/**/b/**/c"
allow = "deny"
"""


@pytest.fixture
async def app(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[AuthServiceApp]:
    (tmp_path / "rules.toml").write_text(RULES)
    application = create_app(make_settings(config=tmp_path / "rules.toml"), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


async def ask(
    client: httpx.AsyncClient,
    token: str | None,
    path: str,
    *,
    host: str | None = "app.example.com",
    method: str = "GET",
) -> httpx.Response:
    headers = {"X-Forwarded-Uri": path, "X-Forwarded-Method": method}
    if host is not None:
        headers["X-Forwarded-Host"] = host
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await client.get(VALIDATE, headers=headers)


@pytest.fixture
def tokens(app: AuthServiceApp) -> dict[str, str]:
    """Access tokens signed by the running service (validate never looks users up)."""
    assert app.runtime is not None
    groups = {"root": ("admins",), "dana": ("finance",), "eve": ()}
    return {
        name: issue_access_token(
            app.runtime.keys,
            app.runtime.token_params,
            User(f"id-{name}", name, "", False, group, "", ""),
            session_id=f"session-{name}",
        )[0]
        for name, group in groups.items()
    }


@pytest.mark.parametrize(
    ("who", "path", "host", "method", "status", "rule"),
    [
        (None, "/healthz", "app.example.com", "GET", 200, None),
        (None, "/public/logo.png", "app.example.com", "GET", 200, None),
        (None, "/public", "app.example.com", "GET", 200, None),
        (None, "/private", "app.example.com", "GET", 401, None),
        ("eve", "/private", "app.example.com", "GET", 200, None),
        ("root", "/internal/metrics", "app.example.com", "GET", 403, "blocked"),
        (None, "/internal/metrics", "app.example.com", "GET", 403, "blocked"),
        ("eve", "/admin/users", "app.example.com", "GET", 403, "admin-only"),
        ("root", "/admin/users", "app.example.com", "GET", 200, None),
        (None, "/admin/users", "app.example.com", "GET", 401, None),
        ("eve", "/orders/7/items", "shop.example.com", "POST", 403, "orders-write"),
        ("eve", "/orders/7/items", "shop.example.com", "GET", 200, None),
        ("eve", "/orders/7/items", "shop.example.org", "POST", 200, None),
        ("dana", "/q3", "reports.example.com", "GET", 200, None),
        ("eve", "/q3", "reports.example.com", "GET", 403, "reports"),
        ("eve", "/q3", "REPORTS.example.com:443", "GET", 403, "reports"),
        ("eve", "/downloads/x", "app.example.com", "GET", 403, "no-downloads"),
        ("eve", "/downloads/x", "app.example.com", "HEAD", 403, "no-downloads"),
        ("eve", "/downloads/x", "app.example.com", "POST", 200, None),
        ("eve", "/legacy/x", "app.example.com", "GET", 403, "legacy"),
        ("eve", "/LEGACY", "app.example.com", "GET", 403, "legacy"),
        ("eve", "/lEgAcY/x/y", "app.example.com", "GET", 403, "legacy"),
        ("eve", "/legacy-new", "app.example.com", "GET", 200, None),
        ("eve", "/ADMIN/users", "app.example.com", "GET", 200, None),  # case-sensitive rule
        ("eve", "/x/a/y/b/z/c", "app.example.com", "GET", 403, "nested"),
        (None, "/public/caf%C3%A9%20menu", "app.example.com", "GET", 200, None),
    ],
)
async def test_rule_decisions(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    who: str | None,
    path: str,
    host: str,
    method: str,
    status: int,
    rule: str | None,
) -> None:
    response = await ask(client, tokens[who] if who else None, path, host=host, method=method)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"] == "rule_denied"
        assert response.json()["rule"] == rule
    if status == 200 and who:
        assert response.headers["x-auth-user"] == who
    if status == 200 and not who:
        # Every identity header, empty: a proxy that copies what we send forwards no one's.
        for name in IDENTITY_HEADERS:
            assert response.headers.get_list(name.decode()) == [""], name


async def test_an_anonymous_page_ignores_a_bad_credential(client: httpx.AsyncClient) -> None:
    response = await ask(client, "garbage.token.here", "/public/x")
    assert response.status_code == 200


async def test_paths_that_are_not_canonical_are_refused_before_any_rule(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # Each spelling (the matrix of tests/test_forwarded.py) is one that an upstream could
    # serve as another path than the rules would see (/admin/..;/public/x is under /admin
    # to Tomcat, /public/x after normalisation): neither the anonymous /public rule nor any
    # other decides; the request is refused, whoever asks. One app for the whole matrix.
    for spelling in NOT_CANONICAL:
        for who in (None, "eve", "root"):
            response = await ask(client, tokens[who] if who else None, spelling)
            assert response.status_code == 400, (spelling, who, response.text)
            body = response.json()
            assert body["error"] == "invalid_request", spelling
            assert body["request_id"] == response.headers["x-request-id"]
            assert "x-auth-user" not in response.headers


async def test_refusals_of_a_path_are_counted(client: httpx.AsyncClient) -> None:
    await ask(client, None, "/admin/..;/public/x")
    metrics = (await client.get("/metrics")).text
    assert 'auth_validate_requests_total{outcome="unauthorized",reason="invalid_request"}' in (
        metrics
    )


@pytest.mark.parametrize("host", [None, ""])
async def test_without_a_forwarded_host_host_rules_refuse_to_decide(
    client: httpx.AsyncClient, tokens: dict[str, str], host: str | None
) -> None:
    # reports.example.com is restricted to finance; a request that does not say which host
    # it is for could be for that one: 400, not "no host rule matched".
    response = await ask(client, tokens["eve"], "/q3", host=host)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_many_double_stars_against_a_long_path_answer_at_once(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # Issue 16, M3: "/**/a/**/b/**/c" as a regex took 54 s on an 8 KB path, on the event
    # loop. The bound is generous (the walk takes milliseconds); the step count is in
    # tests/test_globs.py.
    near_miss = ("/a/b" * 2000)[:8000] + "/x"
    started = time.monotonic()
    missed = await ask(client, tokens["eve"], near_miss)
    matched = await ask(client, tokens["eve"], near_miss[:-2] + "/c")
    assert time.monotonic() - started < 3
    assert missed.status_code == 200
    assert matched.status_code == 403 and matched.json()["rule"] == "nested"


async def test_forbidden_outcomes_are_counted_by_rule_id(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await ask(client, tokens["eve"], "/admin/x")
    metrics = (await client.get("/metrics")).text
    assert 'auth_validate_requests_total{outcome="forbidden",reason="admin-only"}' in metrics


def test_decide_without_rules_and_with_scopes() -> None:
    carol = Identity("id", "carol", ("dev",), ("orders:read",), "jti", time.time() + 60)
    assert decide(None, None).status == 401
    assert decide(carol, None).allowed
    rules = compile_rules(
        [RuleConfig(id="w", path="/w/**", scopes=("orders:read", "orders:write"))]
    )
    rule = first_match(rules, "h", "/w/x", "GET")
    assert rule is not None and decide(carol, rule).status == 403
    assert first_match(rules, "h", "/other", "GET") is None


def test_sighup_reloads_rules_and_keeps_them_when_the_new_file_is_bad(
    database_url: str, serve: Callable[..., Served], tmp_path: Path
) -> None:
    config = tmp_path / "rules.toml"
    config.write_text('[[rules]]\nid = "open"\npath = "/open/**"\nallow = "anonymous"\n')
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_CONFIG=str(config))

    def status(path: str) -> int:
        return httpx.get(served.url + VALIDATE, headers={"X-Forwarded-Uri": path}).status_code

    def wait_for(path: str, expected: int) -> None:
        deadline = time.monotonic() + 5
        while status(path) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(path) == expected

    assert status("/open/x") == 200 and status("/closed") == 401
    config.write_text('[[rules]]\nid = "closed"\npath = "/closed"\nallow = "deny"\n')
    os.kill(served.process.pid, signal.SIGHUP)
    wait_for("/closed", 403)
    assert status("/open/x") == 401  # the old rule is gone

    config.write_text('[[rules]]\nid = "broken"\nallow = "sometimes"\n')
    os.kill(served.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "configuration reload refused" not in served.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "configuration reload refused" in served.log_text()
    assert status("/closed") == 403  # the previous rules stay in force
