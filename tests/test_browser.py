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

from .conftest import PASSWORD, create_user, login

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


SESSION = "__Secure-auth_session"  # Secure, with AUTH_COOKIE_DOMAIN (the settings above)
PRESESSION = "__Host-auth_presession"


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


def cookie_header(response: httpx.Response) -> str:
    """A Cookie header with every cookie ``response`` set, as a browser would send back."""
    return "; ".join(f"{name}={cookie_value(sent)}" for name, sent in cookies_of(response).items())


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return match.group(1).replace("&amp;", "&").replace("&quot;", '"')


async def open_login(client: httpx.AsyncClient, rd: str) -> tuple[str, str]:
    """GET the login form; returns (csrf token from the form, the Cookie header to send)."""
    page = await client.get("/login", params={"rd": rd})
    assert page.status_code == 200
    return hidden(page.text, "csrf_token"), cookie_header(page)


async def sign_in(
    client: httpx.AsyncClient, rd: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    token, cookie = await open_login(client, rd)
    return await client.post(
        "/login",
        data={"username": "alice", "password": password, "csrf_token": token, "rd": rd},
        headers={"Cookie": cookie, "Origin": "http://auth.test", **headers},
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
    if headers.get("Accept") == BROWSER and "X-Original-Uri" not in headers:
        # A browser's post, which no redirect could carry: a page with the way to sign in.
        assert response.headers["content-type"].startswith("text/html")
        assert '<a href="http://auth.test/login">Sign in</a>' in response.text
    else:
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
    presession = cookies_of(page)[PRESESSION]
    for attribute in ("HttpOnly", "SameSite=lax", "Secure", "Path=/"):
        assert attribute in presession
    assert "Domain=" not in presession


async def test_form_login_sets_the_session_cookie_and_returns_to_rd(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    response = await sign_in(client, "https://app.example.com/orders?id=3")
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example.com/orders?id=3"
    session = cookies_of(response)[SESSION]
    for attribute in ("HttpOnly", "SameSite=lax", "Secure", "Domain=example.com", "Path=/"):
        assert attribute in session
    assert "Max-Age=0" in cookies_of(response)[PRESESSION]  # the pre-session ends with it

    token = cookie_value(session)
    validated = await client.get(VALIDATE, headers={**ORIGINAL, "Cookie": f"{SESSION}={token}"})
    assert validated.status_code == 200
    assert validated.headers["x-auth-user"] == "alice"
    assert validated.headers["x-auth-groups"] == "staff"
    home = await client.get("/", headers={"Cookie": f"{SESSION}={token}"})
    assert "signed in as alice" in home.text


async def test_a_field_of_someone_elses_repeated_does_not_spoil_the_form(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The document allows up to 16 properties, each one a list; the reader counts names, as
    the document does, not occurrences (a browser extension's field sent twenty times)."""
    await create_user(database_url, "alice")
    token, cookie = await open_login(client, "/")
    ours = {"username": "alice", "password": PASSWORD, "csrf_token": token, "rd": "/"}
    headers = {"Cookie": cookie, "Origin": "http://auth.test"}
    response = await client.post(
        "/login", data={**ours, "extra": [str(n) for n in range(20)]}, headers=headers
    )
    assert response.status_code == 303 and SESSION in cookies_of(response)
    token, cookie = await open_login(client, "/")
    many = {**ours, "csrf_token": token, **{f"x{n}": "1" for n in range(13)}}  # 17 names
    refused = await client.post("/login", data=many, headers={**headers, "Cookie": cookie})
    assert refused.status_code == 400
    assert "more than 16 fields" in refused.json()["error_description"]


async def test_cookie_lifetime_is_the_session_lifetime(
    client: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "/")
    assert f"Max-Age={settings.session_ttl_seconds}" in cookies_of(response)[SESSION]
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
    session = cookies_of(response)["auth_session"]  # no prefix: browsers refuse it without Secure
    assert "Secure" not in session and "HttpOnly" in session
    assert "Domain=" not in session  # no AUTH_COOKIE_DOMAIN: host-only cookie


async def test_wrong_password_rerenders_the_form_generically(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    response = await sign_in(client, "/", password="wrong password")
    assert response.status_code == 401
    assert "Invalid username or password." in response.text
    assert SESSION not in cookies_of(response)
    assert 'value="alice"' in response.text  # the name is kept, the password is not
    assert "wrong password" not in response.text


@pytest.mark.parametrize(
    "case", ["no token", "no cookie", "another pre-session", "forged", "foreign origin"]
)
async def test_forms_without_a_valid_csrf_token_are_refused(
    client: httpx.AsyncClient, database_url: str, case: str
) -> None:
    await create_user(database_url, "alice")
    token, cookie = await open_login(client, "/")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token, "rd": "/"}
    headers = {"Cookie": cookie}
    if case == "no token":
        del form["csrf_token"]
    elif case == "no cookie":
        headers = {}
    elif case == "another pre-session":
        client.cookies.clear()
        other, _ = await open_login(client, "/")  # a second browser's form
        form["csrf_token"] = other
    elif case == "forged":
        form["csrf_token"] = token.rsplit(".", 1)[0] + ".AAAA"
    elif case == "foreign origin":
        headers["Origin"] = "https://evil.example"
    client.cookies.clear()
    response = await client.post("/login", data=form, headers={"Accept": BROWSER, **headers})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert SESSION not in cookies_of(response)
    assert 'value="alice"' in response.text  # what was typed stays, except the password
    assert PASSWORD not in response.text
    # The page is a working form again: a fresh token, and the pre-session cookie for it.
    assert hidden(response.text, "csrf_token") != form.get("csrf_token")
    assert PRESESSION in cookies_of(response)
    if case == "no cookie":
        assert "allow cookies" in response.text
    else:
        assert "The form expired" in response.text


def _strip_host_prefix(header: str) -> str:
    return header.replace("__Host-", "")


async def test_an_attackers_own_form_token_does_not_work_in_the_victims_browser(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Login CSRF: the attacker opens our login page as themselves and makes the victim's
    browser post that form (with the attacker's name and password)."""
    await create_user(database_url, "alice")
    attacker_token, attacker_cookies = await open_login(client, "/")
    client.cookies.clear()
    _, victim_cookies = await open_login(client, "/")
    client.cookies.clear()
    form = {"username": "alice", "password": PASSWORD, "csrf_token": attacker_token, "rd": "/"}
    # The victim's browser sends its own pre-session cookie: the token is not for it.
    mixed = await client.post("/login", data=form, headers={"Cookie": victim_cookies})
    assert mixed.status_code == 403
    # A sibling subdomain can plant cookies for the whole domain, but never a __Host- one:
    # the attacker's cookies, planted under the names a sibling can set, are not ours.
    planted = await client.post(
        "/login", data=form, headers={"Cookie": _strip_host_prefix(attacker_cookies)}
    )
    assert planted.status_code == 403
    assert SESSION not in cookies_of(planted)


def _post_headers(origin: str | None, site: str | None) -> dict[str, str]:
    headers = {"Accept": BROWSER}
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    return headers


# What browsers send with a form post from our own page: Origin under every referrer policy
# (null under no-referrer, by the Fetch standard), or none at all (older browsers).
OUR_OWN_POSTS = [
    ("http://auth.test", "same-origin"),
    ("null", "same-origin"),
    (None, "same-origin"),
    ("http://auth.test", None),
    (None, None),
]
# What another site's page can make a browser send: an auto-submitting form, from the
# page itself, a sandboxed frame (null), a sibling subdomain, or through a redirect.
FORGED_POSTS = [
    ("https://evil.example", "cross-site"),
    ("https://evil.example", None),
    ("null", "cross-site"),
    ("null", None),
    (None, "cross-site"),
    ("https://app.example.com", "same-site"),
    ("http://auth.test", "cross-site"),
]


@pytest.mark.parametrize(("origin", "site"), OUR_OWN_POSTS)
async def test_our_own_login_form_passes_however_the_browser_labels_it(
    client: httpx.AsyncClient, database_url: str, origin: str | None, site: str | None
) -> None:
    await create_user(database_url, "alice")
    token, cookie = await open_login(client, "/")
    response = await client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "rd": "/"},
        headers={"Cookie": cookie, **_post_headers(origin, site)},
    )
    assert response.status_code == 303, response.text
    assert SESSION in cookies_of(response)


@pytest.mark.parametrize(("origin", "site"), FORGED_POSTS)
async def test_posts_from_other_sites_are_refused(
    client: httpx.AsyncClient, database_url: str, origin: str | None, site: str | None
) -> None:
    """Even with a valid token and cookie (which another site cannot have: defence in depth)."""
    await create_user(database_url, "alice")
    token, cookie = await open_login(client, "/")
    response = await client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "rd": "/"},
        headers={"Cookie": cookie, **_post_headers(origin, site)},
    )
    assert response.status_code == 403
    assert SESSION not in cookies_of(response)


async def _open_logout(client: httpx.AsyncClient) -> tuple[str, str]:
    page = await client.get("/logout")
    assert page.status_code == 200 and 'action="/logout"' in page.text
    return hidden(page.text, "csrf_token"), cookie_header(page)


@pytest.mark.parametrize(("origin", "site"), OUR_OWN_POSTS[:3] + FORGED_POSTS[:3])
async def test_logout_form_checks_the_origin_the_same_way(
    client: httpx.AsyncClient, database_url: str, origin: str | None, site: str | None
) -> None:
    await create_user(database_url, "alice")
    session = cookie_value(cookies_of(await sign_in(client, "/"))[SESSION])
    token, cookie = await _open_logout(client)
    response = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Cookie": f"{cookie}; {SESSION}={session}", **_post_headers(origin, site)},
    )
    ours = (origin, site) in OUR_OWN_POSTS
    assert response.status_code == (303 if ours else 403)
    still = await client.get(VALIDATE, headers={"Cookie": f"{SESSION}={session}"})
    assert still.status_code == (401 if ours else 200)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (
            b"username=a&username=b&password=x&csrf_token=t",
            "application/x-www-form-urlencoded",
            400,
        ),
        (b"username=\xff&password=x", "application/x-www-form-urlencoded", 400),
        (b"username=a%00b&password=x", "application/x-www-form-urlencoded", 400),
        (b"x=" + b"a" * 9000, "application/x-www-form-urlencoded", 413),
        (b"username=a&password=x", "text/plain", 415),
    ],
)
@pytest.mark.parametrize("path", ["/login", "/logout"])
async def test_bad_forms_get_a_4xx(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, path: str
) -> None:
    """JSON for an API client; for a person, the form again with a message."""
    response = await client.post(path, content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json()["error"]

    page = await client.post(
        path, content=content, headers={"content-type": content_type, "Accept": BROWSER}
    )
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert "The form could not be read" in page.text
    assert f'action="{path}"' in page.text and hidden(page.text, "csrf_token")


@pytest.mark.parametrize(
    ("path", "status", "text", "link"),
    [
        ("/login?rd=%01", 400, "The address to return to after signing in is not valid.", "/login"),
        ("/logout?rd=%01", 400, "rd must be a URL of printable ASCII characters", "/"),
        ("/no-such-page", 404, "Not Found", "/"),
    ],
)
async def test_a_person_gets_a_page_with_a_way_back_not_json(
    client: httpx.AsyncClient, path: str, status: int, text: str, link: str
) -> None:
    page = await client.get(path, headers={"Accept": BROWSER})
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert text in page.text and f'<a href="{link}">' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    api = await client.get(path)
    assert api.status_code == status and api.json()["error"]


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

    token, cookie = await _open_logout(client)
    refused = await client.post(
        "/logout", data={"csrf_token": "nope"}, headers={"Cookie": cookie, "Accept": BROWSER}
    )
    assert refused.status_code == 403
    # A page for a person, with a fresh form to press again, not JSON.
    assert refused.headers["content-type"].startswith("text/html")
    assert "The form expired. Please press Sign out again." in refused.text
    assert hidden(refused.text, "csrf_token")

    response = await client.post("/logout", data={"csrf_token": token}, headers={"Cookie": cookie})
    assert response.status_code == 303
    assert response.headers["location"] == "http://auth.test/login?logged_out=1"
    cleared = cookies_of(response)[SESSION]
    assert "Max-Age=0" in cleared and "Domain=example.com" in cleared
    assert cookie_value(cleared) == ""
    after = await client.get("/login?logged_out=1")
    assert "You have signed out." in after.text


async def test_logout_ends_the_session_even_for_a_kept_cookie(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    session = cookie_value(cookies_of(await sign_in(client, "/"))[SESSION])
    cookie = {"Cookie": f"{SESSION}={session}"}
    assert (await client.get(VALIDATE, headers=cookie)).status_code == 200
    token, form_cookie = await _open_logout(client)
    await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Cookie": f"{form_cookie}; {SESSION}={session}"},
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


async def test_pages_keep_the_rd_url_from_other_sites_by_a_policy_that_keeps_origin(
    client: httpx.AsyncClient,
) -> None:
    """``no-referrer`` makes browsers send ``Origin: null`` on our own form posts (Fetch
    standard); ``same-origin`` sends our origin to us and no referrer to anyone else."""
    page = await client.get("/login", params={"rd": "https://app.example.com/orders?id=3"})
    assert page.headers["referrer-policy"] == "same-origin"
    assert '<meta name="referrer" content="same-origin">' in page.text


def _form_action(response: httpx.Response) -> str:
    directives = [d.strip() for d in response.headers["content-security-policy"].split(";")]
    return next(d for d in directives if d.startswith("form-action "))


@pytest.mark.parametrize(
    ("path", "rd", "allowed"),
    [
        ("/login", "http://app.example.com:8443/orders?id=3", "http://app.example.com:8443"),
        ("/login", "https://app.example.com/orders", "https://app.example.com"),
        ("/login", "/orders", "http://auth.test"),
        ("/login", "https://evil.example/", "http://auth.test"),  # falls back to our home
        ("/logout", "http://wiki.example.com:8080/", "http://wiki.example.com:8080"),
        ("/logout", "", "http://auth.test"),  # back to our login page
    ],
)
async def test_form_action_names_exactly_where_the_form_will_redirect(
    client: httpx.AsyncClient, path: str, rd: str, allowed: str
) -> None:
    """Chromium checks the 303 after the post against form-action: a host without its port
    would block a redirect to a non-default port."""
    page = await client.get(path, params={"rd": rd} if rd else {})
    assert _form_action(page) == f"form-action 'self' {allowed}"


@pytest.mark.parametrize(
    ("overrides", "session", "presession"),
    [
        ({"cookie_domain": None}, "__Host-auth_session", "__Host-auth_presession"),
        ({"cookie_domain": "example.com"}, "__Secure-auth_session", "__Host-auth_presession"),
        ({"cookie_secure": False}, "auth_session", "auth_presession"),
        (
            {"cookie_secure": False, "cookie_domain": "example.com"},
            "auth_session",
            "auth_presession",
        ),
        ({"cookie_domain": None, "cookie_name": "sso"}, "__Host-sso", "__Host-auth_presession"),
    ],
)
async def test_cookie_names_carry_the_prefix_browsers_enforce(
    make_settings: Callable[..., Settings],
    database_url: str,
    overrides: dict[str, object],
    session: str,
    presession: str,
) -> None:
    await create_user(database_url, "alice")
    application = create_app(make_settings(**overrides), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            page = await c.get("/login")
            assert presession in cookies_of(page)
            response = await sign_in(c, "/")
            assert session in cookies_of(response), cookies_of(response)
            value = cookie_value(cookies_of(response)[session])
            # Only that name is read: the same token under the bare name is no credential
            # when a prefix applies (a sibling subdomain could have planted it).
            for name in {session, "auth_session"}:
                answer = await c.get(VALIDATE, headers={"Cookie": f"{name}={value}"})
                assert answer.status_code == (200 if name == session else 401)
    if session.startswith("__Host-"):
        attributes = cookies_of(response)[session]
        assert "Secure" in attributes and "Path=/" in attributes and "Domain=" not in attributes


@pytest.mark.parametrize("name", ["__Host-sso", "__secure-sso"])
def test_a_prefixed_cookie_name_is_refused_in_the_settings(
    make_settings: Callable[..., Settings], name: str
) -> None:
    with pytest.raises(ValueError, match="without __Host- or __Secure-"):
        make_settings(cookie_name=name)


async def test_the_session_cookies_token_is_not_a_bearer_token(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Every upstream behind the proxy receives the session cookie: its token must not
    work as ``Authorization: Bearer`` (in another service's hands, say)."""
    await create_user(database_url, "alice")
    session = cookie_value(cookies_of(await sign_in(client, "/"))[SESSION])
    as_cookie = await client.get(VALIDATE, headers={"Cookie": f"{SESSION}={session}"})
    assert as_cookie.status_code == 200  # verified and cached
    for _ in range(2):  # from the cache too
        as_bearer = await client.get(VALIDATE, headers={"Authorization": f"Bearer {session}"})
        assert as_bearer.status_code == 401
        assert as_bearer.json()["error"] == "invalid_token"
    fresh = cookie_value(cookies_of(await sign_in(client, "/"))[SESSION])  # never cached
    refused = await client.get(VALIDATE, headers={"Authorization": f"Bearer {fresh}"})
    assert refused.status_code == 401
    logout = await client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {session}"}
    )
    assert logout.status_code == 401
    assert (
        await client.get(VALIDATE, headers={"Cookie": f"{SESSION}={session}"})
    ).status_code == 200


async def test_access_tokens_keep_working_as_bearer_and_as_cookie(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    for headers in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"{SESSION}={token}"}):
        answer = await client.get(VALIDATE, headers=headers)
        assert answer.status_code == 200 and answer.headers["x-auth-user"] == "alice"


async def test_validates_refusals_are_pages_for_a_browser_and_json_for_others(
    client: httpx.AsyncClient,
) -> None:
    """Traefik shows the client validate's answer as it is."""
    bad_path = {**ORIGINAL, "X-Forwarded-Uri": "/orders/%zz"}
    page = await client.get(VALIDATE, headers={**bad_path, "Accept": BROWSER})
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    api = await client.get(VALIDATE, headers=bad_path)
    assert api.status_code == 400 and api.json()["error"] == "invalid_request"

    post = {**ORIGINAL, "X-Forwarded-Method": "POST"}
    page = await client.get(VALIDATE, headers={**post, "Accept": BROWSER})
    assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Bearer")
    assert '<a href="http://auth.test/login">Sign in</a>' in page.text
    api = await client.get(VALIDATE, headers=post)
    assert api.status_code == 401 and api.json()["error"] == "missing_token"
