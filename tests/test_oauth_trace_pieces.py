"""The pieces of trace-oauth: redaction, the forms it fills in, the challenge it reads, and the
discovery checks, against a stand-in for a third-party server that gets them wrong.

The whole flow against our own stack (Traefik, auth-service, an MCP server) is
tests/e2e/test_trace_oauth.py; here a small local HTTP server answers what another
authorization server might, so each check is seen to fail with its fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auth_service.oauth.trace import trace_oauth
from auth_service.oauth.trace_flow import parse_challenge
from auth_service.oauth.trace_forms import find_forms
from auth_service.oauth.trace_record import REDACTED, Redactor
from tests.tls import DocumentServer, Reply

SECRET = "hunter2-correct-horse"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


# -- redaction --------------------------------------------------------------------------------


def test_secret_headers_are_redacted_whole() -> None:
    r = Redactor()
    shown = r.headers(
        httpx.Headers(
            [
                ("Authorization", "Bearer abc"),
                ("Cookie", "a=1; b=2"),
                ("Set-Cookie", "s=1"),
                ("Set-Cookie", "t=2"),
                ("Content-Type", "text/html"),
            ]
        )
    )
    assert shown == {
        "authorization": REDACTED,
        "cookie": REDACTED,
        "set-cookie": f"{REDACTED}, {REDACTED}",
        "content-type": "text/html",
    }


def test_secret_members_are_redacted_in_json_form_and_query() -> None:
    r = Redactor()
    body = json.dumps(
        {
            "access_token": "at",
            "refresh_token": "rt",
            "token_type": "Bearer",
            "nested": [{"client_secret": "cs", "password": "pw"}],
            "error": {"code": -32600, "message": "kept"},
        }
    ).encode()
    assert json.loads(r.body(body, "application/json; charset=utf-8")) == {
        "access_token": REDACTED,
        "refresh_token": REDACTED,
        "token_type": "Bearer",
        "nested": [{"client_secret": REDACTED, "password": REDACTED}],
        "error": {"code": -32600, "message": "kept"},
    }
    form = b"grant_type=authorization_code&code=abc&code_verifier=xyz&client_id=oc_1"
    assert r.body(form, "application/x-www-form-urlencoded") == (
        "grant_type=authorization_code&code=%5Bredacted%5D&code_verifier=%5Bredacted%5D"
        "&client_id=oc_1"
    )
    location = "http://127.0.0.1:5000/callback?code=abc&state=s1&iss=http%3A%2F%2Fauth"
    assert r.url(location) == (
        "http://127.0.0.1:5000/callback?code=%5Bredacted%5D&state=s1&iss=http%3A%2F%2Fauth"
    )
    assert r.headers(httpx.Headers({"Location": location}))["location"] == r.url(location)


def test_remembered_values_and_jwts_are_scrubbed_from_any_text() -> None:
    r = Redactor()
    r.remember(SECRET, "short", None)
    page = f'<input name="x" value="{SECRET}"> {JWT} pass=hunter2-correct%2Dhorse short'
    shown = r.body(page.encode(), "text/html")
    assert SECRET not in shown
    assert JWT not in shown
    # Values too short to be secrets are left alone: scrubbing "short" would blank prose.
    assert shown.endswith(" short")
    # Spelled as a form or URL would send it.
    r.remember("p@ss word/with+signs")
    assert r.text("a=p%40ss%20word%2Fwith%2Bsigns b=p%40ss+word%2Fwith%2Bsigns") == (
        f"a={REDACTED} b={REDACTED}"
    )


# -- forms and challenges ---------------------------------------------------------------------


def test_forms_are_read_as_a_browser_submits_them() -> None:
    page = """
    <form method="post" action="/login">
      <input type="hidden" name="csrf_token" value="c&amp;1">
      <input name="username" type="text" value="">
      <input name="password" type="password">
      <input name="remember" type="checkbox" value="yes">
      <button type="submit">Sign in</button>
    </form>
    <form method="post" action="/authorize">
      <input type="hidden" name="flow_id" value="f1">
      <button name="decision" value="allow">Allow</button>
      <button name="decision" value="deny">Deny</button>
    </form>"""
    login, consent = find_forms(page)
    assert (login.action, login.method) == ("/login", "post")
    assert login.field_types == {"csrf_token": "hidden", "username": "text", "password": "password"}
    assert login.submission({"username": "alice", "password": "p w"}) == (
        "csrf_token=c%261&username=alice&password=p+w"
    )
    assert consent.has_button("decision", "allow")
    assert consent.submission({}, ("decision", "allow")) == "flow_id=f1&decision=allow"


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="auth-service", resource_metadata="http://h/.well-known/x", scope="a b"',
            "Bearer",
            {
                "realm": "auth-service",
                "resource_metadata": "http://h/.well-known/x",
                "scope": "a b",
            },
        ),
        (
            'Bearer error="invalid_token", error_description="a \\"quoted\\" word"',
            "Bearer",
            {"error": "invalid_token", "error_description": 'a "quoted" word'},
        ),
        ("Bearer error=invalid_token,scope=x", "Bearer", {"error": "invalid_token", "scope": "x"}),
        ("Basic", "Basic", {}),
        ("", "", {}),
    ],
)
def test_challenges_are_parsed(header: str, scheme: str, params: dict[str, str]) -> None:
    assert parse_challenge(header) == (scheme, params)


# -- discovery checks against another server --------------------------------------------------


@pytest.fixture
def other_server() -> Iterator[DocumentServer]:
    server = DocumentServer(None).start()
    try:
        yield server
    finally:
        server.stop()


def _json(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})


def resource_document(server: DocumentServer, **members: Any) -> dict[str, Any]:
    doc = {
        "resource": server.url("/mcp", host="127.0.0.1"),
        "authorization_servers": [server.url("", host="127.0.0.1")],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }
    doc.update(members)
    return doc


def serve_discovery(server: DocumentServer, prm: dict[str, Any], asm: dict[str, Any]) -> str:
    metadata = server.url("/.well-known/oauth-protected-resource/mcp", host="127.0.0.1")
    server.replies["/mcp"] = _json(
        401,
        {"error": "missing_token"},
        **{"WWW-Authenticate": f'Bearer realm="x", resource_metadata="{metadata}"'},
    )
    server.replies["/.well-known/oauth-protected-resource/mcp"] = _json(200, prm)
    server.replies["/.well-known/oauth-authorization-server"] = _json(200, asm)
    return server.url("/mcp", host="127.0.0.1")


def server_document(issuer: str, **members: Any) -> dict[str, Any]:
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "registration_endpoint": f"{issuer}/register",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }
    doc.update(members)
    return doc


async def _failure(url: str) -> tuple[str, str, str, list[str]]:
    result = await trace_oauth(url, "alice", SECRET)
    failed = result.failed_step
    assert failed is not None and not result.passed
    assert [s.step for s in result.steps][-1] == failed.step
    assert failed.problem is not None and failed.fix is not None
    return failed.step, failed.problem, failed.fix, [s.step for s in result.steps if s.passed]


async def test_an_unprotected_url_fails_the_probe(other_server: DocumentServer) -> None:
    other_server.replies["/mcp"] = _json(200, {"jsonrpc": "2.0", "id": 1, "result": {}})
    step, problem, fix, _ = await _failure(other_server.url("/mcp", host="127.0.0.1"))
    assert step == "probe"
    assert "answered 200 without a token, not 401" in problem
    assert "ForwardAuth" in fix


async def test_a_401_without_resource_metadata_fails_the_probe(
    other_server: DocumentServer,
) -> None:
    other_server.replies["/mcp"] = _json(
        401, {"error": "missing_token"}, **{"WWW-Authenticate": 'Bearer realm="auth-service"'}
    )
    url = other_server.url("/mcp", host="127.0.0.1")
    step, problem, fix, _ = await _failure(url)
    assert (step, problem) == ("probe", "the 401 names no absolute resource_metadata URL")
    assert fix.startswith("route /.well-known/oauth-protected-resource")
    assert f"make {url} a resource" in fix


@pytest.mark.parametrize(
    ("resource", "host"),
    [("/mcpx", "127.0.0.1"), ("/mcp", "localhost"), ("/other", "127.0.0.1")],
)
async def test_a_resource_that_does_not_cover_the_url_fails(
    other_server: DocumentServer, resource: str, host: str
) -> None:
    prm = resource_document(other_server, resource=other_server.url(resource, host=host))
    url = serve_discovery(other_server, prm, {})
    step, problem, fix, passed = await _failure(url)
    assert (step, passed) == ("resource_metadata", ["probe"])
    assert "is not" in problem and "clients refuse it" in problem
    assert "prefix of the server's path" in fix


async def test_offline_access_in_the_resource_scopes_fails(other_server: DocumentServer) -> None:
    url = serve_discovery(
        other_server, resource_document(other_server, scopes_supported=["offline_access"]), {}
    )
    step, problem, _, _ = await _failure(url)
    assert step == "resource_metadata"
    assert "includes offline_access" in problem


async def test_an_issuer_mismatch_fails_the_server_metadata(other_server: DocumentServer) -> None:
    issuer = other_server.url("", host="127.0.0.1")
    asm = server_document(issuer + "/")
    url = serve_discovery(other_server, resource_document(other_server), asm)
    step, problem, fix, passed = await _failure(url)
    assert (step, passed) == ("server_metadata", ["probe", "resource_metadata"])
    assert problem == (
        f"issuer '{issuer}/' is not '{issuer}', the resource metadata's authorization server: "
        "clients compare them byte for byte"
    )
    assert "AUTH_PUBLIC_URL" in fix


async def test_missing_server_metadata_is_named(other_server: DocumentServer) -> None:
    url = serve_discovery(other_server, resource_document(other_server), {})
    del other_server.replies["/.well-known/oauth-authorization-server"]
    step, problem, fix, _ = await _failure(url)
    assert step == "server_metadata"
    assert problem.endswith("answered 404, not 200")
    assert "falls back to /authorize" in fix


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"code_challenge_methods_supported": ["plain"]}, "lacks 'S256'"),
        ({"registration_endpoint": None}, "no registration_endpoint"),
        ({"token_endpoint": "http://auth.example/token"}, "is not https"),
    ],
)
async def test_server_metadata_checks(
    other_server: DocumentServer, members: dict[str, Any], problem: str
) -> None:
    issuer = other_server.url("", host="127.0.0.1")
    asm = {k: v for k, v in server_document(issuer, **members).items() if v is not None}
    url = serve_discovery(other_server, resource_document(other_server), asm)
    step, got, _, _ = await _failure(url)
    assert step == "server_metadata"
    assert problem in got


async def test_an_unreachable_server_fails_with_the_reason() -> None:
    step, problem, fix, _ = await _failure("http://127.0.0.1:9/mcp")
    assert step == "probe"
    assert problem.startswith("POST http://127.0.0.1:9/mcp: ConnectError")
    assert "reachable" in fix
