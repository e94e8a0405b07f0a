"""The person at the browser, for the ``mcp`` SDK's OAuth client: follows the authorization URL
through our sign-in form and consent page with httpx, and hands the SDK the code.

Also an in-memory ``TokenStorage`` (the SDK's protocol), shared by the providers of a test.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from mcp.client.auth import AuthorizationCodeResult
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from ..conftest import PASSWORD


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in:\n{page}"
    return match.group(1).replace("&amp;", "&")


class FormLogin:
    """Signs in as ``username`` and allows, each time the SDK sends the person to authorize."""

    def __init__(self, issuer: str, username: str = "alice", password: str = PASSWORD) -> None:
        self.issuer = issuer
        self.username = username
        self.password = password
        self.redirects = 0
        self.consent_pages = 0
        self.location = ""

    async def redirect_handler(self, authorize_url: str) -> None:
        self.redirects += 1
        origin = {"Origin": self.issuer}
        async with httpx.AsyncClient(follow_redirects=False, timeout=10) as browser:
            answer = await browser.get(authorize_url)
            if answer.status_code == 303:  # not signed in: our form, then back to the flow
                login_url = answer.headers["location"]
                form = await browser.get(login_url)
                assert form.status_code == 200, form.text
                rd = parse_qs(urlsplit(login_url).query)["rd"][0]
                signed = await browser.post(
                    self.issuer + "/login",
                    data={
                        "username": self.username,
                        "password": self.password,
                        "csrf_token": _hidden(form.text, "csrf_token"),
                        "rd": rd,
                    },
                    headers=origin,
                )
                assert signed.status_code == 303, signed.text
                answer = await browser.get(signed.headers["location"])
            if answer.status_code == 200:  # the consent page
                self.consent_pages += 1
                answer = await browser.post(
                    self.issuer + "/authorize",
                    data={
                        "flow_id": _hidden(answer.text, "flow_id"),
                        "csrf_token": _hidden(answer.text, "csrf_token"),
                        "decision": "allow",
                    },
                    headers=origin,
                )
            assert answer.status_code == 302, answer.text
            self.location = answer.headers["location"]

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}
        assert "code" in query, self.location
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )


class MemoryStorage:
    """The SDK's ``TokenStorage``, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
