"""The browser flow: redirect to the login form, CSRF, the session cookie, logout."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.settings import Settings

from .conftest import PASSWORD, create_user

VALIDATE = "/api/v1/auth/validate"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ORIGINAL = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/orders?id=3",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_redirect_domains=".example.com", cookie_domain="example.com")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AuthServiceApp]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


def cookies_of(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name, as sent."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header
    return found


def cookie_value(set_cookie: str) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    return next(iter(jar.values())).value


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return match.group(1).replace("&amp;", "&").replace("&quot;", '"')


async def open_login(client: httpx.AsyncClient, rd: str) -> tuple[str, str]:
    """GET the login form; returns (csrf token from the form, csrf cookie)."""
    page = await client.get("/login", params={"rd": rd})
    assert page.status_code == 200
    return hidden(page.text, "csrf_token"), cookie_value(cookies_of(page)["auth_csrf"])


async def sign_in(client: httpx.AsyncClient, rd: str, password: str = PASSWORD) -> httpx.Response:
    token, cookie = await open_login(client, rd)
    return await client.post(
        "/login",
        data={"username": "alice", "password": password, "csrf_token": token, "rd": rd},
        headers={"Cookie": f"auth_csrf={cookie}", "Origin": "http://auth.test"},
    )


async def test_browser_without_credential_is_sent_to_the_login_page(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(VALIDATE, headers={**ORIGINAL, "Accept": BROWSER})
    assert response.status_code == 302
    location = response.headers["location"]
    assert location == "http://auth.test/login?rd=" + quote(
        "https://app.example.com/orders?id=3", safe=""
    )
    assert parse_qs(urlsplit(location).query)["rd"] == ["https://app.example.com/orders?id=3"]


@pytest.mark.parametrize(
    "headers",
    [
        {**ORIGINAL, "Accept": "application/json"},
        {**ORIGINAL, "Accept": "*/*"},
        {**ORIGINAL},
        {**ORIGINAL, "Accept": "application/json, text/html;q=0.5"},
        {**ORIGINAL, "X-Forwarded-Method": "POST", "Accept": BROWSER},
        # nginx's auth_request cannot relay a redirect: it gets the 401 and redirects itself,
        # where we name a login URL: for browsers only.
        {"X-Original-Uri": "/orders", "X-Forwarded-Host": "app.example.com", "Accept": BROWSER},
        {"X-Original-Uri": "/orders", "X-Forwarded-Host": "app.example.com", "Accept": "*/*"},
        {
            "X-Original-Uri": "/orders",
            "X-Forwarded-Host": "app.example.com",
            "Accept": "application/json, text/html;q=0.5",
        },
    ],
)
async def test_api_clients_keep_getting_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(VALIDATE, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_token"
    if "X-Original-Uri" in headers:  # nginx answers from our error code
        assert response.headers["x-auth-error"] == "missing_token"
    if "X-Original-Uri" in headers and headers["Accept"] == BROWSER:
        # nginx redirects browsers itself, to the login URL we name.
        assert response.headers["x-auth-redirect"] == "http://auth.test/login?rd=" + quote(
            "http://app.example.com/orders", safe=""
        )
    else:
        assert "x-auth-redirect" not in response.headers


async def test_login_page_is_protected_and_accessible(client: httpx.AsyncClient) -> None:
    rd = 'https://app.example.com/"><script>alert(1)</script>'
    page = await client.get("/login", params={"rd": rd})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp  # no scripts at all (default-src 'none')
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert hidden(page.text, "rd") == rd.replace("&", "&amp;") or "&quot;&gt;" in page.text
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    assert 'autocomplete="current-password"' in page.text
    csrf = cookies_of(page)["auth_csrf"]
    assert "HttpOnly" in csrf and "SameSite=strict" in csrf and "Secure" in csrf


async def test_form_login_sets_the_session_cookie_and_returns_to_rd(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    response = await sign_in(client, "https://app.example.com/orders?id=3")
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example.com/orders?id=3"
    session = cookies_of(response)["auth_session"]
    for attribute in ("HttpOnly", "SameSite=lax", "Secure", "Domain=example.com", "Path=/"):
        assert attribute in session

    token = cookie_value(session)
    validated = await client.get(VALIDATE, headers={**ORIGINAL, "Cookie": f"auth_session={token}"})
    assert validated.status_code == 200
    assert validated.headers["x-auth-user"] == "alice"
    assert validated.headers["x-auth-groups"] == "staff"
    home = await client.get("/", headers={"Cookie": f"auth_session={token}"})
    assert "signed in as alice" in home.text


async def test_cookie_lifetime_is_the_session_lifetime(
    client: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "/")
    assert f"Max-Age={settings.session_ttl_seconds}" in cookies_of(response)["auth_session"]
    assert response.headers["location"] == "http://auth.test/"


async def test_insecure_cookie_only_when_configured(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    await create_user(database_url, "alice")
    application = create_app(make_settings(cookie_secure=False), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            response = await sign_in(c, "/")
    session = cookies_of(response)["auth_session"]
    assert "Secure" not in session and "HttpOnly" in session
    assert "Domain=" not in session  # no AUTH_COOKIE_DOMAIN: host-only cookie


async def test_wrong_password_rerenders_the_form_generically(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "/", password="wrong password")
    assert response.status_code == 401
    assert "Invalid username or password." in response.text
    assert "auth_session" not in cookies_of(response)
    assert 'value="alice"' in response.text  # the name is kept, the password is not
    assert "wrong password" not in response.text


@pytest.mark.parametrize("case", ["no token", "no cookie", "mismatch", "forged", "foreign origin"])
async def test_forms_without_a_valid_csrf_token_are_refused(
    client: httpx.AsyncClient, database_url: str, case: str
) -> None:
    await create_user(database_url, "alice")
    token, cookie = await open_login(client, "/")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token, "rd": "/"}
    headers = {"Cookie": f"auth_csrf={cookie}"}
    if case == "no token":
        del form["csrf_token"]
    elif case == "no cookie":
        headers = {}
    elif case == "mismatch":
        other, _ = await open_login(client, "/")
        form["csrf_token"] = other
    elif case == "forged":
        forged = token.rsplit(".", 1)[0] + ".AAAA"
        form["csrf_token"] = forged
        headers = {"Cookie": f"auth_csrf={forged}"}
    elif case == "foreign origin":
        headers["Origin"] = "https://evil.example"
    response = await client.post("/login", data=form, headers=headers)
    assert response.status_code == 403
    assert "auth_session" not in cookies_of(response)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"username=a&username=b&password=x&csrf_token=t", 400),
        (b"username=\xff&password=x", 400),
        (b"username=a%00b&password=x", 400),
        (b"x=" + b"a" * 9000, 413),
    ],
)
async def test_bad_forms_get_a_4xx(client: httpx.AsyncClient, content: bytes, status: int) -> None:
    response = await client.post(
        "/login", content=content, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == status
    assert response.json()["error"]


async def test_unsafe_rd_falls_back_to_our_home(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "https://evil.com/steal")
    assert response.status_code == 303
    assert response.headers["location"] == "http://auth.test/"


async def test_logout_clears_the_cookie(client: httpx.AsyncClient, database_url: str) -> None:
    await create_user(database_url, "alice")
    signed_in = await sign_in(client, "/")
    assert signed_in.status_code == 303

    page = await client.get("/logout")
    assert page.status_code == 200 and 'action="/logout"' in page.text
    token = hidden(page.text, "csrf_token")
    cookie = cookie_value(cookies_of(page)["auth_csrf"])
    refused = await client.post(
        "/logout", data={"csrf_token": "nope"}, headers={"Cookie": f"auth_csrf={cookie}"}
    )
    assert refused.status_code == 403

    response = await client.post(
        "/logout", data={"csrf_token": token}, headers={"Cookie": f"auth_csrf={cookie}"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "http://auth.test/login?logged_out=1"
    cleared = cookies_of(response)["auth_session"]
    assert "Max-Age=0" in cleared and "Domain=example.com" in cleared
    assert cookie_value(cleared) == ""
    after = await client.get("/login?logged_out=1")
    assert "You have signed out." in after.text


async def test_logout_ends_the_session_even_for_a_kept_cookie(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    session = cookie_value(cookies_of(await sign_in(client, "/"))["auth_session"])
    cookie = {"Cookie": f"auth_session={session}"}
    assert (await client.get(VALIDATE, headers=cookie)).status_code == 200
    page = await client.get("/logout")
    csrf = cookie_value(cookies_of(page)["auth_csrf"])
    await client.post(
        "/logout",
        data={"csrf_token": hidden(page.text, "csrf_token")},
        headers={"Cookie": f"auth_csrf={csrf}; auth_session={session}"},
    )
    # A copy of the cookie kept after logout (a stolen one, say) no longer works.
    refused = await client.get(VALIDATE, headers=cookie)
    assert refused.status_code == 401 and refused.json()["error"] == "revoked_token"


async def test_browser_gets_a_refresh_cookie_for_the_refresh_endpoint_only(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "/")
    refresh = cookies_of(response)["auth_refresh"]
    for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/api/v1/auth/refresh"):
        assert attribute in refresh
    renewed = await client.post(
        "/api/v1/auth/refresh", headers={"Cookie": f"auth_refresh={cookie_value(refresh)}"}
    )
    assert renewed.status_code == 200, renewed.text
    assert cookie_value(cookies_of(renewed)["auth_refresh"]) != cookie_value(refresh)
    ok = await client.get(
        VALIDATE, headers={"Authorization": f"Bearer {renewed.json()['access_token']}"}
    )
    assert ok.headers["x-auth-user"] == "alice"
