"""Refusals as a person meets them in Chromium: forged posts from another site, an expired
form, a bad link. Each is a page with a way on, never JSON. One layout is enough here (two
hosts on non-default ports, the hardest for the browser's own checks)."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from .conftest import PASSWORD, STAFF_ONLY, USERNAME, Layout
from .test_flows import ORIGINAL, on_login_page, session_cookie, signed_in, upstream

pytestmark = pytest.mark.parametrize("layout", ["two-hosts"], indirect=True)

ATTACKER = "http://attacker.test"  # another site: served to the browser by Playwright


def attackers_own_form(layout: Layout) -> str:
    """What an attacker gets by opening our login page as themselves: a valid token, bound
    to the attacker's own pre-session cookie."""
    page = httpx.get(f"http://127.0.0.1:{layout.auth.port}/login", headers={"Accept": "text/html"})
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match and page.cookies
    return html.unescape(match.group(1))


def serve_attack_page(context: BrowserContext, action: str, fields: dict[str, str]) -> None:
    """A page on another site whose form posts itself to ``action`` as soon as it loads."""
    inputs = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    body = (
        f'<form method="post" action="{action}">{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    )

    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=body)

    context.route(f"{ATTACKER}/**", fulfil)


def test_another_sites_auto_submitting_login_form_is_refused(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    """Login CSRF: the attacker's page signs the victim in as the attacker, unless refused."""
    serve_attack_page(
        context,
        layout.login("/login"),
        {
            "username": USERNAME,  # the attacker's account, in this story
            "password": PASSWORD,
            "csrf_token": attackers_own_form(layout),
            "rd": layout.app(ORIGINAL),
        },
    )
    page.goto(f"{ATTACKER}/win-a-prize")
    page.wait_for_url(layout.login("/login"))
    expect(page.get_by_role("alert")).to_have_text("The form expired. Please sign in again.")
    assert session_cookie(context, layout) is None
    page.goto(layout.app(ORIGINAL))
    on_login_page(page, layout)  # not signed in as anyone


def test_another_sites_auto_submitting_logout_form_is_refused(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    signed_in(page, layout)
    serve_attack_page(context, layout.login("/logout"), {"csrf_token": "x"})
    page.goto(f"{ATTACKER}/cute-cats")
    page.wait_for_url(layout.login("/logout"))
    expect(page.get_by_role("alert")).to_contain_text("The form expired")
    page.goto(layout.app(ORIGINAL))
    assert upstream(page)["headers"]["x-auth-user"] == [USERNAME]  # still signed in


def test_an_expired_logout_form_is_a_page_and_pressing_again_works(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    signed_in(page, layout)
    page.goto(layout.login("/logout"))
    session = session_cookie(context, layout)
    # The pre-session cookie goes (it expired while the page stayed open).
    context.clear_cookies()
    assert session is not None
    context.add_cookies([{k: session[k] for k in ("name", "value", "domain", "path")}])
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("press Sign out again")
    assert "json" not in (page.evaluate("document.contentType") or "")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(layout.login("/login?logged_out=1"))
    assert session_cookie(context, layout) is None


def test_an_expired_login_form_keeps_the_name_and_signs_in_on_the_second_try(
    layout: Layout, page: Page, context: BrowserContext
) -> None:
    page.goto(layout.app(ORIGINAL))
    on_login_page(page, layout)
    context.clear_cookies()  # the form outlived its pre-session cookie
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("allow cookies")
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    expect(page.get_by_label("Password")).to_be_focused()
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(layout.app(ORIGINAL))  # rd was kept too


def test_a_bad_rd_link_is_a_page_with_a_way_to_sign_in(layout: Layout, page: Page) -> None:
    page.goto(layout.login("/login?rd=" + quote("https://app.example.test/\x01", safe="")))
    expect(page.get_by_role("heading", name="This request is not valid")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    on_login_page(page, layout)


def test_a_page_the_rules_refuse_is_a_page_not_json(layout: Layout, page: Page) -> None:
    """Traefik shows the person validate's own answer: for a browser, a page."""
    signed_in(page, layout)
    answer = page.goto(layout.app(STAFF_ONLY + "roster"))
    assert answer is not None and answer.status == 403
    assert answer.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Not for you")).to_be_visible()
    page.get_by_role("link", name="Go to the start page").click()
    page.wait_for_url(layout.app("/"))
    assert upstream(page)["headers"]["x-auth-user"] == [USERNAME]


def test_a_form_posted_to_the_application_without_a_session_is_a_page(
    layout: Layout, page: Page
) -> None:
    """A post cannot be redirected to the login page and back with its body: the person
    gets a page that says so, with the way to sign in."""
    page.route(
        layout.app("/form"),
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<form method="post" action="{layout.app("/orders")}">'
            '<input name="item" value="7"><button>Order</button></form>',
        ),
    )
    page.goto(layout.app("/form"))
    with page.expect_response(layout.app("/orders")) as posted:
        page.get_by_role("button", name="Order").click()
    assert posted.value.status == 401
    expect(page.get_by_role("heading", name="Please sign in")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    on_login_page(page, layout)
