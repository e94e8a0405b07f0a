"""Through Traefik and nginx for real: 401 for API clients, the login redirect for browsers,
identity headers for tokens and cookies, no forged identity, and the whole form round trip."""

from __future__ import annotations

import re
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from auth_service.cache import IDENTITY_HEADERS

from ..conftest import PASSWORD, create_user
from .conftest import Stack

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ORIGINAL_PATH = "/orders?id=3&view=full"


def upstream_headers(response: httpx.Response) -> dict[str, list[str]]:
    """The headers the echo upstream received, by lower-case name (a list: duplicates show)."""
    assert response.status_code == 200, response.text
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


async def json_login(stack: Stack) -> str:
    response = httpx.post(
        stack.url("auth", "/api/v1/auth/login"),
        headers=stack.headers("auth"),
        json={"username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def get_app(stack: Stack, path: str = ORIGINAL_PATH, **headers: str) -> httpx.Response:
    return httpx.get(stack.url("app", path), headers=stack.headers("app", **headers))


def assert_our_401(response: httpx.Response, code: str) -> None:
    """Our JSON error (README: error codes in 401 bodies), whichever proxy answered."""
    assert response.status_code == 401, response.text
    (challenge,) = response.headers.get_list("www-authenticate")
    assert challenge.startswith('Bearer realm="auth-service"')
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "error_description", "request_id"}
    assert body["error"] == code
    assert body["request_id"] == response.headers["x-request-id"]


async def test_api_client_without_token_gets_401(stack: Stack) -> None:
    response = get_app(stack, Accept="application/json")
    assert_our_401(response, "missing_token")
    assert "error=" not in response.headers["www-authenticate"]
    bad = get_app(stack, Accept="application/json", Authorization="Bearer not.a.token")
    assert_our_401(bad, "invalid_token")
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("method", "accept"),
    [
        ("GET", "*/*"),  # curl
        ("GET", "application/json, text/html;q=0.5"),  # prefers JSON
        ("GET", "text/html;q=0"),  # refuses HTML
        ("POST", BROWSER),  # a form post is not sent to the login page
    ],
)
async def test_only_a_browser_is_sent_to_the_login_page(
    stack: Stack, method: str, accept: str
) -> None:
    """The README's browser test, the same through every proxy."""
    response = httpx.request(
        method, stack.url("app", ORIGINAL_PATH), headers=stack.headers("app", Accept=accept)
    )
    if accept == BROWSER and stack.kind != "nginx":
        # A person's form post: not redirected (its body would be lost), but told so on a
        # page with the way to sign in, where the proxy shows validate's answer. nginx's
        # auth_request cannot pass a body on: it answers our JSON from X-Auth-Error.
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="auth-service"')
        assert response.headers["content-type"].startswith("text/html")
        assert f'<a href="{stack.public_url}/login">Sign in</a>' in response.text
        return
    assert_our_401(response, "missing_token")


async def test_browser_is_redirected_to_login_with_rd(stack: Stack) -> None:
    response = get_app(stack, Accept=BROWSER)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == stack.public_url + "/login"
    assert parse_qs(location.query)["rd"] == [stack.app_url + ORIGINAL_PATH]


async def test_bearer_token_reaches_upstream_with_identity(stack: Stack, database_url: str) -> None:
    await create_user(database_url, "alice", groups=("staff", "ops"))
    token = await json_login(stack)
    seen = upstream_headers(get_app(stack, Authorization=f"Bearer {token}"))
    assert seen["x-auth-user"] == ["alice"]
    assert seen["x-auth-groups"] == ["ops,staff"]
    assert len(seen["x-auth-user-id"][0]) == 36
    assert seen["x-request-id"][0]


async def test_client_supplied_identity_headers_never_reach_upstream(
    stack: Stack, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    token = await json_login(stack)
    forged = {
        "X-Auth-User": "mallory",
        "X-Auth-User-Id": "00000000-0000-0000-0000-000000000000",
        "X-Auth-Groups": "admins",
        "X-Auth-Scopes": "everything",
    }
    seen = upstream_headers(get_app(stack, Authorization=f"Bearer {token}", **forged))
    assert seen["x-auth-user"] == ["alice"]
    assert seen["x-auth-groups"] == ["staff"]
    assert seen["x-auth-user-id"] != [forged["X-Auth-User-Id"]]
    assert "everything" not in seen.get("x-auth-scopes", [])
    # Without a credential the forged headers do not get through at all.
    assert get_app(stack, **forged).status_code == 401


def _cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar[name].value
    raise AssertionError(f"no {name} cookie in {response.headers}")


async def test_form_login_round_trip_ends_on_the_original_page(
    stack: Stack, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    # 1. The browser asks for a protected page and is sent to the login form.
    first = get_app(stack, Accept=BROWSER)
    assert first.status_code == 302
    login_url = urlsplit(first.headers["location"])
    rd = parse_qs(login_url.query)["rd"][0]

    # 2. It opens the form through the proxy (the auth host).
    form = httpx.get(
        stack.url("auth", "/login"),
        params={"rd": rd},
        headers=stack.headers("auth", Accept=BROWSER),
    )
    assert form.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    presession = _cookie(form, "auth_presession")

    # 3. It posts the form; the answer sets the session cookie and returns to the page.
    posted = httpx.post(
        stack.url("auth", "/login"),
        headers=stack.headers(
            "auth", Cookie=f"auth_presession={presession}", Origin=stack.public_url
        ),
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf.group(1), "rd": rd},
    )
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == stack.app_url + ORIGINAL_PATH
    session = _cookie(posted, "auth_session")

    # 4. Back on the original page with the cookie, the upstream sees who it is.
    final = get_app(stack, Accept=BROWSER, Cookie=f"auth_session={session}")
    seen = upstream_headers(final)
    assert final.json()["path"] == ORIGINAL_PATH
    assert seen["x-auth-user"] == ["alice"]
    assert seen["x-auth-groups"] == ["staff"]


async def test_session_cookie_alone_is_a_credential(stack: Stack, database_url: str) -> None:
    await create_user(database_url, "alice")
    token = await json_login(stack)  # an access token works as the cookie's value too
    seen: dict[str, Any] = upstream_headers(get_app(stack, Cookie=f"auth_session={token}"))
    assert seen["x-auth-user"] == ["alice"]


# What a client forges to pass as someone else, under every identity header name.
FORGED_VALUES = {
    "x-auth-user": "mallory",
    "x-auth-user-id": "00000000-0000-0000-0000-000000000000",
    "x-auth-groups": "root,admins",
    "x-auth-scopes": "orders:write admin",
}


def forged_identity(spelling: Callable[[str], str] = str.title) -> list[tuple[str, str]]:
    """Every identity header (cache.IDENTITY_HEADERS), with a forged value."""
    return [
        (spelling(name.decode()), FORGED_VALUES.get(name.decode(), "forged"))
        for name in IDENTITY_HEADERS
    ]


def assert_nothing_forged(seen: dict[str, list[str]], identity: dict[str, str]) -> None:
    """The upstream saw ``identity`` (name -> value), and nobody under the other names."""
    for name in IDENTITY_HEADERS:
        key = name.decode()
        assert seen.get(key, [""]) == [identity.get(key, "")], (key, seen.get(key))


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "x-upstream" not in response.headers, "the upstream was reached"


async def test_forged_identity_never_reaches_upstream_with_a_valid_token(
    stack: Stack, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    token = await json_login(stack)
    # Each forged header twice, spelled two ways: a proxy must drop every copy.
    forged = forged_identity() + forged_identity(str.upper)
    response = httpx.get(
        stack.url("app", ORIGINAL_PATH),
        headers=[*stack.headers("app").items(), ("Authorization", f"Bearer {token}"), *forged],
    )
    seen = upstream_headers(response)
    assert seen["x-auth-user"] == ["alice"]
    assert seen["x-auth-groups"] == ["staff"]
    assert seen.get("x-auth-scopes", [""]) == [""]  # alice's token has no scopes
    for name, value in forged:
        assert value not in seen.get(name.lower(), []), name


@pytest.mark.parametrize("credential", ["none", "bad", "good"])
async def test_forged_identity_never_reaches_upstream_on_an_anonymous_rule(
    stack: Stack, database_url: str, credential: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    headers = dict(forged_identity())
    if credential == "bad":
        headers["Authorization"] = "Bearer not.a.token"
    elif credential == "good":
        headers["Authorization"] = f"Bearer {await json_login(stack)}"
    seen = upstream_headers(get_app(stack, "/public/page", **headers))
    if credential == "good":
        assert seen["x-auth-user"] == ["alice"]
        assert seen["x-auth-groups"] == ["staff"]
    else:
        assert_nothing_forged(seen, {})


async def test_refused_requests_never_reach_upstream(stack: Stack, database_url: str) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    token = await json_login(stack)
    forged = dict(forged_identity())
    assert_refused(get_app(stack, **forged), 401)
    assert_refused(get_app(stack, Authorization="Bearer not.a.token", **forged), 401)
    denied = get_app(stack, "/internal/x", Authorization=f"Bearer {token}", **forged)
    assert_refused(denied, 403)


@pytest.mark.parametrize("stack", ["nginx"], indirect=True)
@pytest.mark.parametrize(
    "ours",
    [
        ["auth_session={token}"],
        ["__Host-auth_session={token}", "auth_session={token}"],
        ["__Secure-auth_session={token}", "auth_session={token}", "auth_presession=p"],
    ],
)
async def test_nginx_keeps_our_cookies_from_the_upstream(
    stack: Stack, database_url: str, ours: list[str]
) -> None:
    """The session cookie is a credential: the shipped nginx file passes the application
    its own cookies only (Traefik cannot do this; SECURITY.md). The stack's cookie is
    ``auth_session`` (plain HTTP); the prefixed names are stripped as well."""
    await create_user(database_url, "alice")
    token = await json_login(stack)
    mine = [part.format(token=token) for part in ours]
    for cookies in (["theme=dark", *mine, "lang=en"], [*mine, "theme=dark"], ["a=1", *mine]):
        response = get_app(stack, Cookie="; ".join(cookies))
        seen = upstream_headers(response)
        assert seen["x-auth-user"] == ["alice"]  # validate saw the cookie
        sent = [p.strip() for h in seen.get("cookie", []) for p in h.split(";") if p.strip()]
        assert sent == [c for c in cookies if c not in mine]
    alone = upstream_headers(get_app(stack, Cookie=f"auth_session={token}"))
    assert "cookie" not in alone
