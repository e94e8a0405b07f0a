"""``/authorize`` and the consent page over HTTP: the client and redirect URI first (a page,
never a redirect), then every refusal back to the client with ``state`` and ``iss``, the
sign-in round trip, consent CSRF and its binding to the browser, remembered consent."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from auth_service.app import AuthServiceApp
from auth_service.oauth.flows import MAX_BROWSER_FLOWS

from .oauth_flow import (
    ISSUER,
    REDIRECT,
    answer_consent,
    authorize_params,
    get_code,
    hidden,
    issuer_client,
    module_database,
    module_settings,
    pkce,
    query_of,
    register,
    sign_in,
    started,
    to_consent,
)

# One service and database for the module (each test registers clients of its own); a fresh
# browser (cookie jar) per test.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def database_url(server_url: str) -> Iterator[str]:
    yield from module_database(server_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AuthServiceApp]:
    settings = module_settings(database_url, tmp_path_factory.mktemp("oauth"))
    async with started(settings) as application:
        yield application


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer_client(app) as c:
        yield c


@pytest.fixture
def alice() -> None:
    """alice and mallory exist (``module_database``)."""


@pytest_asyncio.fixture(loop_scope="module")
async def client_id(client: httpx.AsyncClient) -> str:
    return str((await register(client))["client_id"])


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _refusal_page(answer: httpx.Response) -> None:
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert "This sign-in link is not valid" in answer.text


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "oc_unknown"},
        {"client_id": None},
        {"client_id": "https://app.example.com/client.json"},  # no metadata documents yet
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": "http://127.0.0.1:33333/other"},
        {"redirect_uri": "http://localhost:33333/callback"},
        {"redirect_uri": "http://127.0.0.1:33333/callback#frag"},
        {"redirect_uri": "http://evil@127.0.0.1:33333/callback"},
        {"redirect_uri": None},
    ],
)
async def test_an_unknown_client_or_redirect_uri_gets_a_page_and_no_redirect(
    client: httpx.AsyncClient, client_id: str, change: dict[str, str | None]
) -> None:
    _, challenge = pkce()
    params = authorize_params(client_id, challenge, **change)
    _refusal_page(await client.get("/authorize", params=params, headers=BROWSER))


async def test_a_client_that_prefers_json_gets_our_json_error(client: httpx.AsyncClient) -> None:
    _, challenge = pkce()
    answer = await client.get(
        "/authorize",
        params=authorize_params("oc_unknown", challenge),
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert set(answer.json()) == {"error", "error_description", "request_id"}
    assert answer.json()["error"] == "invalid_request"


async def test_repeated_client_id_or_redirect_uri_gets_the_page(
    client: httpx.AsyncClient, client_id: str
) -> None:
    _, challenge = pkce()
    params = list(authorize_params(client_id, challenge).items())
    twice = [*params, ("client_id", client_id)]
    _refusal_page(await client.get("/authorize", params=twice, headers=BROWSER))
    evil = ("redirect_uri", "https://evil.example/cb")
    _refusal_page(await client.get("/authorize", params=[*params, evil], headers=BROWSER))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"code_challenge": "+" * 43}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"resource": None}, None),  # the only configured resource is the default
        ({"scope": " offline_access"}, None),  # the MCP SDK's, when a resource lists none
        ({"resource": "https://mcp.example.com/other"}, "invalid_target"),
        ({"resource": "https://mcp.example.com/mcp#frag"}, "invalid_target"),
        ({"resource": "mcp.example.com/mcp"}, "invalid_target"),
        ({"resource": "http://mcp.example.com/mcp"}, "invalid_target"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"scope": "mcp:read admin"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "none consent"}, "invalid_request"),
        ({"state": "x" * 1025}, "invalid_request"),
    ],
)
async def test_refusals_after_the_client_is_known_go_back_with_state_and_iss(
    client: httpx.AsyncClient, client_id: str, change: dict[str, str | None], error: str | None
) -> None:
    _, challenge = pkce()
    params = authorize_params(client_id, challenge, **change)
    answer = await client.get("/authorize", params=params)
    if error is None:
        assert answer.status_code == 303  # on to the sign-in form
        return
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query["iss"] == ISSUER
    assert query.get("state") == (params["state"] if len(params["state"]) <= 1024 else None)
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_any_repeated_parameter_goes_back_as_invalid_request(
    client: httpx.AsyncClient, client_id: str
) -> None:
    _, challenge = pkce()
    params = [*authorize_params(client_id, challenge).items(), ("scope", "mcp:write")]
    answer = await client.get("/authorize", params=params)
    assert answer.status_code == 302
    assert query_of(answer.headers["location"])["error"] == "invalid_request"


@pytest.mark.usefixtures("alice")
async def test_a_loopback_redirect_may_use_another_port(
    client: httpx.AsyncClient, client_id: str
) -> None:
    _, challenge = pkce()
    params = authorize_params(client_id, challenge, redirect_uri="http://127.0.0.1:50123/callback")
    code = await get_code(client, params)
    assert code


@pytest.mark.usefixtures("alice")
async def test_sign_in_comes_back_to_the_flow_and_the_consent_page_says_who_where_what(
    client: httpx.AsyncClient,
) -> None:
    registered = await register(client, client_name='<script>alert("x")</script>')
    _, challenge = pkce()
    params = authorize_params(registered["client_id"], challenge, scope="mcp:read offline_access")
    first = await client.get("/authorize", params=params)
    assert first.status_code == 303
    login = urlsplit(first.headers["location"])
    assert f"{login.scheme}://{login.netloc}{login.path}" == ISSUER + "/login"
    rd = query_of(first.headers["location"])["rd"]
    assert rd.startswith("/authorize?flow_id=")
    page = await to_consent(client, params)
    assert page.status_code == 200
    text = page.text
    assert "<script>alert" not in text
    assert html.escape('<script>alert("x")</script>') in text
    assert "Orders MCP" in text and "https://mcp.example.com/mcp" in text
    assert "<strong>alice</strong>" in text
    assert "<strong>127.0.0.1</strong>" in text and "on this computer" in text
    assert "<code>mcp:read</code>" in text and "stay connected (refresh)" in text
    assert "<code>mcp:write</code>" not in text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:33333;" in csp


@pytest.mark.usefixtures("alice")
async def test_deny_goes_back_as_access_denied(client: httpx.AsyncClient, client_id: str) -> None:
    _, challenge = pkce()
    params = authorize_params(client_id, challenge)
    answer = await answer_consent(client, await to_consent(client, params), "deny")
    assert answer.status_code == 302
    query = query_of(answer.headers["location"])
    assert (query["error"], query["state"], query["iss"]) == (
        "access_denied",
        params["state"],
        ISSUER,
    )
    assert "code" not in query


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize(
    "forgery",
    ["no csrf token", "foreign origin", "no flow cookie", "another flow cookie", "other user"],
)
async def test_a_forged_consent_answer_is_refused(
    client: httpx.AsyncClient, app: AuthServiceApp, client_id: str, forgery: str
) -> None:
    _, challenge = pkce()
    page = await to_consent(client, authorize_params(client_id, challenge))
    form = {
        "flow_id": hidden(page.text, "flow_id"),
        "csrf_token": hidden(page.text, "csrf_token"),
        "decision": "allow",
    }
    headers = {"Origin": ISSUER}
    if forgery == "no csrf token":
        del form["csrf_token"]
    elif forgery == "foreign origin":
        headers["Origin"] = "https://evil.example"
    elif forgery in ("no flow cookie", "another flow cookie"):
        # The flow id leaked to another browser (the attacker's, signed in as mallory).
        async with issuer_client(app) as attacker:
            if forgery == "another flow cookie":
                await attacker.get("/authorize", params=authorize_params(client_id, challenge))
            signed = await sign_in(attacker, "/", username="mallory")
            assert signed.status_code == 303
            login_page = await attacker.get("/login")
            form["csrf_token"] = hidden(login_page.text, "csrf_token")
            answer = await attacker.post("/authorize", data=form, headers=headers)
            assert answer.status_code == 403
            assert "location" not in answer.headers
            return
    elif forgery == "other user":
        # mallory signs in in the same browser after alice was shown the page
        flow_cookie = client.cookies["__Host-auth_oauth_flow"]
        client.cookies.clear()
        signed = await sign_in(client, "/", username="mallory")
        assert signed.status_code == 303
        client.cookies.set("__Host-auth_oauth_flow", flow_cookie, domain="auth.example")
        login_page = await client.get("/login")
        form["csrf_token"] = hidden(login_page.text, "csrf_token")
    answer = await client.post("/authorize", data=form, headers=headers)
    assert answer.status_code == 403, answer.text
    assert "location" not in answer.headers


@pytest.mark.usefixtures("alice")
async def test_remembered_consent_skips_the_page_unless_prompt_consent(
    client: httpx.AsyncClient, client_id: str
) -> None:
    _, challenge = pkce()
    await get_code(client, authorize_params(client_id, challenge, scope="mcp:read"))
    again = await client.get(
        "/authorize", params=authorize_params(client_id, challenge, scope="mcp:read")
    )
    assert again.status_code == 302
    assert "code" in query_of(again.headers["location"])
    silent = await client.get(
        "/authorize", params=authorize_params(client_id, challenge, scope="mcp:read", prompt="none")
    )
    assert "code" in query_of(silent.headers["location"])
    asked = await client.get(
        "/authorize",
        params=authorize_params(client_id, challenge, scope="mcp:read", prompt="consent"),
    )
    assert asked.status_code == 200 and "Allow access?" in asked.text
    wider = await client.get(
        "/authorize",
        params=authorize_params(client_id, challenge, scope="mcp:write", prompt="none"),
    )
    assert query_of(wider.headers["location"])["error"] == "consent_required"


@pytest.mark.usefixtures("alice")
async def test_a_flow_is_answered_once(client: httpx.AsyncClient, client_id: str) -> None:
    _, challenge = pkce()
    page = await to_consent(client, authorize_params(client_id, challenge))
    first = await answer_consent(client, page)
    assert first.status_code == 302
    second = await answer_consent(client, page)
    assert second.status_code == 403
    resumed = await client.get(
        "/authorize", params={"flow_id": hidden(page.text, "flow_id")}, headers=BROWSER
    )
    _refusal_page(resumed)


@pytest.mark.usefixtures("alice")
async def test_an_expired_flow_cannot_be_resumed(
    client: httpx.AsyncClient, client_id: str, database_url: str
) -> None:
    _, challenge = pkce()
    first = await client.get("/authorize", params=authorize_params(client_id, challenge))
    rd = query_of(first.headers["location"])["rd"]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE oauth_flows SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    assert (await sign_in(client, rd)).status_code == 303
    _refusal_page(await client.get(rd, headers=BROWSER))


@pytest.mark.parametrize(
    "rd",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/authorize?flow_id=x",
    ],
)
@pytest.mark.usefixtures("alice")
async def test_the_sign_in_form_still_refuses_open_redirects(
    client: httpx.AsyncClient, rd: str
) -> None:
    signed = await sign_in(client, rd)
    assert signed.status_code == 303
    assert signed.headers["location"] == ISSUER + "/"


@pytest.mark.usefixtures("alice")
async def test_the_consents_page_lists_and_revokes(
    client: httpx.AsyncClient, client_id: str, database_url: str
) -> None:
    _, challenge = pkce()
    await get_code(client, authorize_params(client_id, challenge))
    page = await client.get("/oauth/consents")
    assert page.status_code == 200
    assert "Probe" in page.text and "https://mcp.example.com/mcp" in page.text
    forged = await client.post(
        "/oauth/consents/revoke",
        data={"client_id": client_id, "resource": "https://mcp.example.com/mcp"},
        headers={"Origin": ISSUER},
    )
    assert forged.status_code == 403
    revoked = await client.post(
        "/oauth/consents/revoke",
        data={
            "client_id": client_id,
            "resource": "https://mcp.example.com/mcp",
            "csrf_token": hidden(page.text, "csrf_token"),
        },
        headers={"Origin": ISSUER},
    )
    assert revoked.status_code == 200
    assert "Access revoked." in revoked.text
    again = await client.get("/authorize", params=authorize_params(client_id, challenge))
    assert again.status_code == 200 and "Allow access?" in again.text
    conn = await asyncpg.connect(database_url)
    try:
        events = await conn.fetch("SELECT event FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    names = [e["event"] for e in events]
    for event in ("oauth_client_registered", "oauth_consent_granted", "oauth_code_issued"):
        assert event in names
    assert "oauth_consent_revoked" in names


@pytest.mark.usefixtures("alice")
async def test_the_consents_page_needs_a_sign_in_and_the_home_page_links_to_it(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.get("/oauth/consents")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?rd=%2Foauth%2Fconsents"
    assert (await sign_in(client, "/oauth/consents", username="mallory")).status_code == 303
    home = await client.get("/")
    assert 'href="/oauth/consents"' in home.text
    empty = await client.get("/oauth/consents")  # mallory never allows anything here
    assert "You have not allowed any application." in empty.text


@pytest.mark.usefixtures("alice")
async def test_one_browser_answers_several_pending_requests_in_any_order(
    app: AuthServiceApp, client_id: str
) -> None:
    # An editor connecting to several MCP servers opens their sign-in tabs together.
    assert app.runtime is not None
    presession = app.runtime.settings.presession_cookie_name
    async with issuer_client(app) as browser:
        _, challenge = pkce()
        pages = [
            await to_consent(browser, authorize_params(client_id, challenge, state=f"tab {n}"))
            for n in range(MAX_BROWSER_FLOWS)
        ]
        assert len({hidden(page.text, "flow_id") for page in pages}) == MAX_BROWSER_FLOWS
        for n in (1, 3, 0, 2):
            answer = await answer_consent(browser, pages[n])
            assert answer.status_code == 302, answer.text
            query = query_of(answer.headers["location"])
            assert query["state"] == f"tab {n}" and query["code"]
            if n != 2:  # the other tabs' pages still hold: the pre-session stays
                assert presession in browser.cookies
        # Every request answered: the flow cookie and the pre-session are gone.
        assert not [c for c in browser.cookies.jar if c.name.endswith("auth_oauth_flow")]
        assert presession not in browser.cookies


@pytest.mark.usefixtures("alice")
async def test_past_the_limit_the_oldest_pending_request_of_a_browser_lapses(
    app: AuthServiceApp, client_id: str
) -> None:
    async with issuer_client(app) as browser:
        _, challenge = pkce()
        pages = [
            await to_consent(browser, authorize_params(client_id, challenge, state=f"tab {n}"))
            for n in range(MAX_BROWSER_FLOWS + 1)
        ]
        oldest = await answer_consent(browser, pages[0])
        assert oldest.status_code == 403
        assert "started in another browser" in oldest.text
        for page in pages[1:]:
            assert (await answer_consent(browser, page)).status_code == 302


@pytest.mark.usefixtures("alice")
async def test_a_request_answered_at_once_leaves_the_pending_ones_cookie_alone(
    app: AuthServiceApp, client_id: str
) -> None:
    assert app.runtime is not None
    presession = app.runtime.settings.presession_cookie_name
    async with issuer_client(app) as browser:
        _, challenge = pkce()
        remembered = authorize_params(client_id, challenge, scope="mcp:read")
        await get_code(browser, remembered)  # consent given once, and remembered
        pending = await to_consent(
            browser, authorize_params(client_id, challenge, scope="mcp:write", state="pending")
        )
        assert "Allow access?" in pending.text
        cookie = browser.cookies["__Host-auth_oauth_flow"]
        at_once = await browser.get("/authorize", params=remembered)
        assert at_once.status_code == 302 and "code" in query_of(at_once.headers["location"])
        assert "auth_oauth_flow" not in at_once.headers.get("set-cookie", "")
        assert browser.cookies["__Host-auth_oauth_flow"] == cookie
        answer = await answer_consent(browser, pending)
        assert query_of(answer.headers["location"])["state"] == "pending"
        # That was the browser's last pending request: both cookies go.
        assert not [c for c in browser.cookies.jar if c.name.endswith("auth_oauth_flow")]
        assert presession not in browser.cookies
