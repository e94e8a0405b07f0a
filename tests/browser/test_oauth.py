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
