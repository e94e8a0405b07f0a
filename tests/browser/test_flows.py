"""What a person does in Chromium, in every layout: through Traefik on one host, on two
hosts with non-default ports, with docker-compose's settings, and through nginx."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jwt
from asgi_lifespan import LifespanManager
from playwright.sync_api import BrowserContext, Page, expect

from auth_service.app import create_app
from auth_service.settings import Settings

from .conftest import PASSWORD, USERNAME, Layout, in_thread, screenshot

ORIGINAL = "/orders?id=3&view=full"


def on_login_page(page: Page, layout: Layout) -> dict[str, list[str]]:
    """Wait for the login form; its query (``rd``)."""
    page.wait_for_url(layout.login() + "**")
    parts = urlsplit(page.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == layout.login()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    return parse_qs(parts.query)


def sign_in(page: Page, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def upstream(page: Page) -> dict[str, Any]:
    """What the echo upstream received (it answers with JSON, which Chromium shows as text):
    the path, and the headers by lower-case name."""
    seen = json.loads(page.locator("body").inner_text())
    headers: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return {"path": seen["path"], "headers": headers}


def session_cookie(context: BrowserContext, layout: Layout) -> dict[str, Any] | None:
    return next((c for c in context.cookies() if c["name"] == layout.session_cookie), None)


def signed_in(page: Page, layout: Layout, path: str = ORIGINAL) -> None:
    """From a protected page, through the login form, back to that page."""
    page.goto(layout.app(path))
    on_login_page(page, layout)
    sign_in(page)
    page.wait_for_url(layout.app(path))


def test_a_protected_page_sends_the_browser_to_the_login_page_with_rd(
    layout: Layout, page: Page
) -> None:
    page.goto(layout.app(ORIGINAL))
    query = on_login_page(page, layout)
    assert query["rd"] == [layout.app(ORIGINAL)]
    expect(page.get_by_label("Username")).to_be_focused()
    screenshot(layout, page, "login.png")


def test_a_wrong_password_shows_the_message_keeps_the_name_and_sets_no_session(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    page.goto(layout.app(ORIGINAL))
    on_login_page(page, layout)
    sign_in(page, password="not the password")
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()
    assert page.locator("input[name=rd]").input_value() == layout.app(ORIGINAL)
    assert session_cookie(context, layout) is None
    screenshot(layout, page, "login-error.png")


def test_the_right_password_lands_on_the_page_asked_for_as_that_user(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    signed_in(page, layout)
    seen = upstream(page)
    assert seen["path"] == ORIGINAL
    assert seen["headers"]["x-auth-user"] == [USERNAME]
    cookie = session_cookie(context, layout)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["secure"] == layout.session_cookie.startswith("__")


def test_a_second_page_needs_no_new_login(layout: Layout, page: Page) -> None:
    signed_in(page, layout)
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.goto(layout.app("/reports/2026?format=html"))
    assert page.url == layout.app("/reports/2026?format=html")
    assert upstream(page)["headers"]["x-auth-user"] == [USERNAME]
    assert not [url for url in visited if url.startswith(layout.login())]


def test_logout_confirms_then_the_next_protected_page_asks_to_sign_in(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    signed_in(page, layout)
    page.goto(layout.login("/logout"))
    expect(page.get_by_role("heading", name="Sign out")).to_be_visible()
    assert session_cookie(context, layout) is not None  # the page alone signs no one out
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(layout.login("/login?logged_out=1"))
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    assert session_cookie(context, layout) is None
    page.goto(layout.app(ORIGINAL))
    assert on_login_page(page, layout)["rd"] == [layout.app(ORIGINAL)]


def test_an_rd_to_another_site_is_never_followed(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    visited: list[str] = []
    context.on("request", lambda request: visited.append(request.url))
    page.goto(layout.login("/login?rd=" + quote("https://evil.example/", safe="")))
    sign_in(page)
    page.wait_for_url(layout.login("/"))  # our own home instead
    if layout.name != "one-host":  # there "/" is the application's
        expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
        expect(page.get_by_text(f"You are signed in as {USERNAME}.")).to_be_visible()
        screenshot(layout, page, "home.png")
    assert not [url for url in visited if urlsplit(url).hostname == "evil.example"]


def test_signing_in_with_the_keyboard_alone(layout: Layout, page: Page) -> None:
    page.goto(layout.app(ORIGINAL))
    on_login_page(page, layout)
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(layout.app(ORIGINAL))
    assert upstream(page)["headers"]["x-auth-user"] == [USERNAME]


def _expired_copy(layout: Layout, token: str) -> str:
    """The same session token, as it is once its lifetime has passed: signed with the
    service's own key, loaded as the service loads it."""
    env = layout.auth.env
    settings = Settings(**{k[5:].lower(): v for k, v in env.items() if k.startswith("AUTH_")})

    async def sign() -> str:
        application = create_app(settings, configure_logs=False)
        async with LifespanManager(application, startup_timeout=30):
            assert application.runtime is not None
            key = application.runtime.keys.signing
            claims = jwt.decode(token, options={"verify_signature": False})
            now = int(time.time())
            claims.update(iat=now - 9 * 3600, nbf=now - 9 * 3600, exp=now - 3600)
            header = jwt.get_unverified_header(token)
            return jwt.encode(
                claims,
                key.private_key,
                algorithm=key.algorithm,
                headers={"kid": key.kid, "typ": header["typ"]},
            )

    return in_thread(sign)


def test_an_expired_session_cookie_leads_to_the_login_page_and_back(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    signed_in(page, layout)
    cookie = session_cookie(context, layout)
    assert cookie is not None
    expired = _expired_copy(layout, cookie["value"])
    keep = ("name", "domain", "path", "expires", "httpOnly", "secure", "sameSite")
    context.add_cookies([{**{k: cookie[k] for k in keep}, "value": expired}])
    page.goto(layout.app("/after?the=weekend"))
    assert on_login_page(page, layout)["rd"] == [layout.app("/after?the=weekend")]
    sign_in(page)
    page.wait_for_url(layout.app("/after?the=weekend"))
    assert upstream(page)["headers"]["x-auth-user"] == [USERNAME]
