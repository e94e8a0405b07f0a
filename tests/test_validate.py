"""/api/v1/auth/validate: 200 with identity headers for our tokens, 401 for anything else."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth_service.app import AuthServiceApp
from auth_service.cache import IDENTITY_HEADERS
from auth_service.jws import sign_es256
from auth_service.routes.validate import validate_endpoint

from .conftest import create_user, login

VALIDATE = "/api/v1/auth/validate"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(app: AuthServiceApp, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "http://auth.test",
        "sub": "00000000-0000-0000-0000-000000000001",
        "aud": "auth-service",
        "iat": now,
        "exp": now + 300,
        "jti": "test-jti",
        "sid": "test-session",
        "preferred_username": "forged",
        "groups": ["admins"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(app: AuthServiceApp, claims: dict[str, Any], **header: Any) -> str:
    assert app.runtime is not None
    key = app.runtime.keys.signing
    return sign_es256(
        {"alg": "ES256", "kid": key.kid, "typ": "at+jwt", **header}, claims, key.private_key
    )


async def test_valid_token_gives_identity_headers(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("admins", "dev"))
    token = await login(client, "alice")
    for method in ("GET", "POST", "HEAD", "DELETE"):
        response = await client.request(
            method, VALIDATE, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, method
        assert response.headers["x-auth-user"] == "alice"
        assert len(response.headers["x-auth-user-id"]) == 36
        assert response.headers["x-auth-groups"] == "admins,dev"
        assert response.headers["x-auth-scopes"] == ""
        assert len(response.headers["x-request-id"]) == 16
        for name in IDENTITY_HEADERS:  # every one, once: a proxy copies exactly these
            assert len(response.headers.get_list(name.decode())) == 1, name


async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    response = await client.get(VALIDATE, headers={"Authorization": f"bEaReR {token}"})
    assert response.status_code == 200


async def test_no_credential_gets_a_challenge_without_error(client: httpx.AsyncClient) -> None:
    response = await client.get(VALIDATE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="auth-service"'
    body = response.json()
    assert body["error"] == "missing_token"
    assert body["request_id"] == response.headers["x-request-id"]


def _garbage(app: AuthServiceApp) -> str:
    return "not-a-jwt"


def _tampered(app: AuthServiceApp) -> str:
    token = _sign(app, _claims(app))
    header, payload, signature = token.split(".")
    changed = json.loads(base64.urlsafe_b64decode(payload + "=="))
    changed["preferred_username"] = "admin"
    return ".".join([header, _b64(json.dumps(changed).encode()), signature])


def _alg_none(app: AuthServiceApp) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": app.runtime.keys.signing.kid}  # type: ignore[union-attr]
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(app)).encode())}."


def _expired(app: AuthServiceApp) -> str:
    now = int(time.time())
    return _sign(app, _claims(app, iat=now - 3600, exp=now - 600))


def _wrong_audience(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app, aud="another-service"))


def _wrong_issuer(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app, iss="https://evil.example"))


def _foreign_key(app: AuthServiceApp) -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    kid = app.runtime.keys.signing.kid  # type: ignore[union-attr]
    return jwt.encode(_claims(app), other, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


def _hs256_with_public_key(app: AuthServiceApp) -> str:
    public = app.runtime.keys.signing.public_key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": app.runtime.keys.signing.kid}  # type: ignore[union-attr]
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(app)).encode())}"
    import hashlib
    import hmac

    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _missing_jti(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app, jti=None))


def _wrong_typ(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app), typ="JWT")


def _unknown_kid(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app), kid="no-such-key")


def _non_string_sub(app: AuthServiceApp) -> str:
    return _sign(app, _claims(app, sub=12345))


def _future_iat(app: AuthServiceApp) -> str:
    now = int(time.time())
    return _sign(app, _claims(app, iat=now + 3600, exp=now + 7200))


@pytest.mark.parametrize(
    ("forge", "error"),
    [
        (_garbage, "invalid_token"),
        (_tampered, "invalid_token"),
        (_alg_none, "invalid_token"),
        (_expired, "expired_token"),
        (_wrong_audience, "invalid_token"),
        (_wrong_issuer, "invalid_token"),
        (_foreign_key, "invalid_token"),
        (_hs256_with_public_key, "invalid_token"),
        (_missing_jti, "invalid_token"),
        (_wrong_typ, "invalid_token"),
        (_unknown_kid, "invalid_token"),
        (_non_string_sub, "invalid_token"),
        (_future_iat, "invalid_token"),
    ],
)
async def test_bad_tokens_are_refused(
    app: AuthServiceApp,
    client: httpx.AsyncClient,
    forge: Callable[[AuthServiceApp], str],
    error: str,
) -> None:
    response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {forge(app)}"})
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "x-auth-user" not in response.headers


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ([("Authorization", "Basic YWxpY2U6cGFzcw==")], "malformed_header"),
        ([("Authorization", "Bearer")], "malformed_header"),
        ([("Authorization", "Bearer a b")], "malformed_header"),
        ([("Authorization", "Bearer " + "a" * 5000)], "token_too_long"),
        (
            [("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer a.b.c")],
            "malformed_header",
        ),
    ],
)
async def test_malformed_authorization_headers_are_refused(
    client: httpx.AsyncClient, headers: list[tuple[str, str]], error: str
) -> None:
    response = await client.get(VALIDATE, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_valid_token_sent_twice_in_two_headers_is_refused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    response = await client.get(VALIDATE, headers=headers)
    assert response.status_code == 401


async def test_token_over_the_cap_is_refused_before_decoding(
    make_settings: Callable[..., Any], database_url: str
) -> None:
    # A genuine token of ours is refused once the cap is below its length.
    from asgi_lifespan import LifespanManager

    from auth_service.app import create_app

    await create_user(database_url, "alice", groups=tuple(f"group-{i:03d}" for i in range(60)))
    application = create_app(make_settings(token_max_length=1024), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            token = await login(c, "alice")
            assert len(token) > 1024
            response = await c.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "token_too_long"


async def test_request_id_is_taken_only_from_trusted_proxies(app: AuthServiceApp) -> None:
    trusted = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    untrusted = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=trusted, base_url="http://auth.test") as c:
        response = await c.get(VALIDATE, headers={"X-Request-Id": "proxy-id-123"})
        assert response.headers["x-request-id"] == "proxy-id-123"
        assert response.json()["request_id"] == "proxy-id-123"
        bad = await c.get(VALIDATE, headers={"X-Request-Id": "evil\tid with spaces"})
        assert bad.headers["x-request-id"] != "evil\tid with spaces"
    async with httpx.AsyncClient(transport=untrusted, base_url="http://auth.test") as c:
        response = await c.get(VALIDATE, headers={"X-Request-Id": "proxy-id-123"})
        assert response.headers["x-request-id"] != "proxy-id-123"


async def test_repeated_token_is_answered_from_the_cache(
    app: AuthServiceApp, client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    assert app.runtime is not None
    cache = app.runtime.authenticator.cache
    assert len(cache) == 0
    for _ in range(3):
        response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    assert len(cache) == 1
    assert cache.get(token) is not None


@pytest.mark.parametrize("uri", ["/a%00b", "/a%0d%0aX:1", "/bad%zz", "not-a-path"])
async def test_unsafe_forwarded_paths_are_refused_with_400(
    client: httpx.AsyncClient, database_url: str, uri: str
) -> None:
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    response = await client.get(
        VALIDATE, headers={"Authorization": f"Bearer {token}", "X-Forwarded-Uri": uri}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "x-auth-user" not in response.headers


async def test_a_forwarded_uri_over_the_cap_gets_414(client: httpx.AsyncClient) -> None:
    at_cap = "/" + "a" * 8191
    assert (await client.get(VALIDATE, headers={"X-Forwarded-Uri": at_cap})).status_code == 401
    response = await client.get(VALIDATE, headers={"X-Forwarded-Uri": at_cap + "a"})
    assert response.status_code == 414
    assert response.json()["error"] == "invalid_request"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_cookie_headers_over_the_cap_get_431_and_a_long_accept_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    other_cookies = "; ".join(f"c{i}=v" for i in range(4000))  # ~30 KB from other sites
    response = await client.get(VALIDATE, headers={"Cookie": other_cookies})
    assert response.status_code == 431
    assert response.json()["error"] == "invalid_request"
    browser = "text/html,application/xhtml+xml"
    assert (await client.get(VALIDATE, headers={"Accept": browser})).status_code == 302
    padded = browser + "," + ",".join(f"x/y{i}" for i in range(200))  # over 1 KB
    response = await client.get(VALIDATE, headers={"Accept": padded})
    assert response.status_code == 401  # read as an API client, without parsing it


def _python_lines_run(runtime: Any, headers: list[tuple[bytes, bytes]]) -> int:
    """Lines of Python that validate runs for one request with ``headers`` from a proxy."""
    scope = {"type": "http", "headers": headers, "client": ("127.0.0.1", 1)}
    answers: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    lines = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += event == "line"
        return trace

    coroutine = validate_endpoint(runtime, scope, receive, send)
    sys.settrace(trace)
    try:
        coroutine.send(None)  # it answers without awaiting anything that suspends
    except StopIteration:
        pass
    finally:
        sys.settrace(None)
    assert answers and answers[0]["status"] >= 300  # never an identity
    return lines


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("x-forwarded-uri", b"/x%20"),  # escapes: the long way through the path check
        ("x-original-uri", b"//.."),
        ("cookie", b"a=1; "),
        ("accept", b"text/html;q=0.1,"),
    ],
)
def test_huge_headers_cost_validate_no_more_python_than_small_ones(
    app: AuthServiceApp, name: str, unit: bytes
) -> None:
    # Issue 16, M4: three clients with 900 KB paths pushed everyone's p50 from 2 to 776 ms,
    # because the value was walked in Python. Counted in lines run, not in time: a huge
    # value is refused or ignored before anything walks it.
    assert app.runtime is not None
    small = _python_lines_run(app.runtime, [(name.encode(), unit * (1024 // len(unit)))])
    huge = _python_lines_run(app.runtime, [(name.encode(), unit * (200_000 // len(unit)))])
    assert huge <= small + 20, (small, huge)
