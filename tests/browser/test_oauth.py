"""A person approving an MCP client in real Chromium: the authorize link, our sign-in form,
the consent page, Allow, and the browser at the client's redirect URI with the code.

The redirect URI is a loopback port of its own (another origin than ours): Chromium applies the
consent page's CSP ``form-action`` to the redirect that ends the Allow post, so the page must
name that origin, which httpx alone would never notice.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route

from ..conftest import Served, cli_env, drop_database, free_port, start_served
from .conftest import PASSWORD, USERNAME, _create_database, in_thread

CLIENT_NAME = "Claude-ish Desktop"


@pytest.fixture
def issuer(tmp_path: Path, server_url: str) -> Iterator[Served]:
    """auth-service on its own, OAuth on (loopback http issuer), alice in its database."""
    database_url = in_thread(lambda: _create_database(server_url))
    port = free_port()
    auth = start_served(
        tmp_path,
        cli_env(
            AUTH_DATABASE_URL=database_url,
            AUTH_PUBLIC_URL=f"http://127.0.0.1:{port}",
            AUTH_COOKIE_SECURE="false",
        ),
        port=port,
    )
    try:
        yield auth
    finally:
        auth.stop()
        in_thread(lambda: drop_database(server_url, database_url))


def test_a_person_approves_a_client_and_the_browser_lands_on_the_redirect(
    issuer: Served, page: Page
) -> None:
    callback = f"http://127.0.0.1:{free_port()}/callback"
    registered = httpx.post(
        issuer.url + "/register",
        json={
            "client_name": CLIENT_NAME,
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registered.status_code == 201
    client_id = registered.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(12)
    resource = "http://127.0.0.1:9/mcp"
    authorize = (
        issuer.url
        + "/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": callback,
                "state": state,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
                "resource": resource,
            }
        )
    )
    arrived: list[str] = []

    def at_the_client(route: Route) -> None:  # the native app's one-shot listener
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="You can close this tab.")

    page.route(callback + "**", at_the_client)
    page.goto(authorize)
    page.wait_for_url(issuer.url + "/login?**")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(issuer.url + "/authorize?flow_id=**")
    consent = page.locator("main").inner_text()
    assert CLIENT_NAME in consent
    assert "as alice" in consent
    assert "sent back to 127.0.0.1: an application on this computer" in consent
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(callback + "?**")
    assert page.locator("body").inner_text() == "You can close this tab."
    assert len(arrived) == 1
    query = {k: v[0] for k, v in parse_qs(urlsplit(arrived[0]).query).items()}
    assert query["state"] == state
    assert query["iss"] == issuer.url
    token = httpx.post(
        issuer.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": callback,
            "code_verifier": verifier,
            "client_id": client_id,
            "resource": resource,
        },
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"


def _register(issuer: Served, name: str) -> tuple[str, str]:
    """A public client with a loopback redirect URI of its own: its id and that URI."""
    callback = f"http://127.0.0.1:{free_port()}/callback"
    registered = httpx.post(
        issuer.url + "/register",
        json={
            "client_name": name,
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registered.status_code == 201, registered.text
    return registered.json()["client_id"], callback


def test_two_clients_signing_in_at_once_each_get_their_code_in_one_browser(
    issuer: Served, page: Page
) -> None:
    # An editor starting two MCP servers' sign-ins together: two tabs of one browser, each
    # with its own pending request, answered in the other order than they were opened.
    tabs, arrived, verifiers = [page, page.context.new_page()], {}, {}
    clients = [_register(issuer, name) for name in ("Editor, orders server", "Editor, wiki")]

    def at_the_client(route: Route) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        arrived[query["state"]] = query
        route.fulfill(status=200, content_type="text/plain", body="You can close this tab.")

    for n, (tab, (client_id, callback)) in enumerate(zip(tabs, clients, strict=True)):
        verifiers[n] = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifiers[n].encode()).digest())
        page.context.route(callback + "**", at_the_client)
        tab.goto(
            issuer.url
            + "/authorize?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": callback,
                    "state": f"tab {n}",
                    "code_challenge": challenge.rstrip(b"=").decode(),
                    "code_challenge_method": "S256",
                    "resource": "http://127.0.0.1:9/mcp",
                }
            )
        )
        if n == 0:  # the first tab signs in; the second finds the person signed in
            tab.wait_for_url(issuer.url + "/login?**")
            tab.get_by_label("Username").fill(USERNAME)
            tab.get_by_label("Password").fill(PASSWORD)
            tab.get_by_role("button", name="Sign in").click()
        tab.wait_for_url(issuer.url + "/authorize?**")
        assert ("orders server" if n == 0 else "wiki") in tab.locator("main").inner_text()
    for n in (1, 0):
        tabs[n].bring_to_front()  # as the person switching tabs does
        tabs[n].get_by_role("button", name="Allow").click()
        tabs[n].wait_for_url(clients[n][1] + "?**")
        assert tabs[n].locator("body").inner_text() == "You can close this tab."
    assert sorted(arrived) == ["tab 0", "tab 1"]
    for n, (client_id, callback) in enumerate(clients):
        token = httpx.post(
            issuer.url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": arrived[f"tab {n}"]["code"],
                "redirect_uri": callback,
                "code_verifier": verifiers[n],
                "client_id": client_id,
                "resource": "http://127.0.0.1:9/mcp",
            },
        )
        assert token.status_code == 200, token.text
