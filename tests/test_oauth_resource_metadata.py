"""``/.well-known/oauth-protected-resource[/<path>]`` (RFC 9728), per forwarded host: the
document an MCP client reads from validate's 401 to find us (issue 15).

In-process on the real PostgreSQL; a trusted proxy's headers come from 127.0.0.1, an
untrusted client's from a public address.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import create_app
from auth_service.metrics import OAUTH_REQUESTS
from auth_service.settings import Settings

PRM = "/.well-known/oauth-protected-resource"
ISSUER = "https://auth.example.com"
CONFIG = """
[[rules]]
id = "orders-admin"
path = "/mcp/admin/**"
scopes = ["orders:write"]

[[rules]]
id = "reports"
host = "reports.example.com"
path = "/**"
scopes = ["reports:read"]

[[resources]]
url = "https://mcp.example.com/mcp"
name = "Orders MCP"
scopes = ["orders:read", "orders:write"]
rules = ["orders-admin"]

[[resources]]
url = "http://127.0.0.1:8001"
scopes = ["local"]
"""
MCP_DOCUMENT = {
    "resource": "https://mcp.example.com/mcp",
    "authorization_servers": [ISSUER],
    "scopes_supported": ["orders:read", "orders:write"],
    "bearer_methods_supported": ["header"],
    "resource_name": "Orders MCP",
}


async def _serve(
    settings: Settings, peer: str = "127.0.0.1"
) -> AsyncIterator[Callable[..., httpx.Response]]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            yield c  # type: ignore[misc]


def configured(make_settings: Callable[..., Settings], tmp_path: Path, text: str) -> Settings:
    (tmp_path / "auth.toml").write_text(text)
    return make_settings(public_url=ISSUER, config=str(tmp_path / "auth.toml"))


@pytest.fixture
async def metadata(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _serve(configured(make_settings, tmp_path, CONFIG)):
        yield client  # type: ignore[misc]


def forwarded(host: str, proto: str = "https") -> dict[str, str]:
    return {"X-Forwarded-Proto": proto, "X-Forwarded-Host": host}


async def test_the_document_of_a_configured_resource(metadata: httpx.AsyncClient) -> None:
    before = counted()
    response = await metadata.get(PRM + "/mcp", headers=forwarded("mcp.example.com"))
    assert response.status_code == 200, response.text
    assert response.json() == MCP_DOCUMENT
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "max-age=300"
    assert response.headers["access-control-allow-origin"] == "*"
    # HEAD as GET, without the body.
    head = await metadata.head(PRM + "/mcp", headers=forwarded("mcp.example.com"))
    assert head.status_code == 200 and head.content == b""
    await metadata.get(PRM + "/nothing", headers=forwarded("mcp.example.com"))
    await metadata.get(PRM + "/mcp/", headers=forwarded("mcp.example.com"))
    after = counted()
    assert {k: after[k] - before[k] for k in after} == {
        "ok": 2,
        "not_found": 1,
        "invalid_request": 1,
    }


def counted() -> dict[str, float]:
    """``auth_oauth_requests_total{endpoint="resource_metadata"}`` by outcome."""
    return {
        outcome: OAUTH_REQUESTS.labels("resource_metadata", outcome)._value.get()
        for outcome in ("ok", "not_found", "invalid_request")
    }


@pytest.mark.parametrize(
    ("host", "proto"),
    [("MCP.Example.com", "https"), ("mcp.example.com:443", "https"), ("mcp.example.com", "HTTPS")],
)
async def test_the_resource_is_named_in_its_one_canonical_spelling(
    metadata: httpx.AsyncClient, host: str, proto: str
) -> None:
    response = await metadata.get(PRM + "/mcp", headers=forwarded(host, proto))
    assert response.status_code == 200, response.text
    assert response.json()["resource"] == "https://mcp.example.com/mcp"


async def test_a_loopback_resource_at_the_root_of_its_origin(metadata: httpx.AsyncClient) -> None:
    response = await metadata.get(PRM, headers=forwarded("127.0.0.1:8001", "http"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "resource": "http://127.0.0.1:8001",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["local"],
        "bearer_methods_supported": ["header"],
    }


@pytest.mark.parametrize(
    ("path", "host", "proto"),
    [
        (PRM, "mcp.example.com", "https"),  # the resource is /mcp, not the origin
        (PRM + "/mcp/tools", "mcp.example.com", "https"),  # RFC 9728 §3.3: the exact URL
        (PRM + "/mcpx", "mcp.example.com", "https"),
        (PRM + "/mcp", "mcp.example.com", "http"),
        (PRM + "/mcp", "mcp.example.com:8443", "https"),
        (PRM + "/mcp", "other.example.com", "https"),
        (PRM + "/mcp;x=1", "mcp.example.com", "https"),
    ],
)
async def test_no_document_for_a_url_that_is_not_a_resource(
    metadata: httpx.AsyncClient, path: str, host: str, proto: str
) -> None:
    response = await metadata.get(path, headers=forwarded(host, proto))
    # 404, never a 5xx: a 5xx ends an MCP client's discovery, a 4xx lets it try the next URL.
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert set(response.json()) == {"error", "error_description", "request_id"}


@pytest.mark.parametrize(
    "suffix",
    [
        "/",
        "/mcp/",
        "//mcp",
        "/./mcp",
        "/../metrics",
        "/..%2fmetrics",
        "/%2e%2e/metrics",
        "/%6dcp",
        "/mcp%2F..%2F..%2Fmetrics",
        "/mcp\\..\\metrics",
    ],
)
async def test_a_path_that_is_not_canonical_is_refused(
    metadata: httpx.AsyncClient, suffix: str
) -> None:
    # Straight to the application: an HTTP client would tidy "." and ".." away.
    status, body = await raw_get(metadata, (PRM + suffix).encode(), forwarded("mcp.example.com"))
    assert status == 400, (suffix, body)
    assert json.loads(body)["error"] == "invalid_request"


async def raw_get(
    client: httpx.AsyncClient, raw_path: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as given, as uvicorn would pass it on from the proxy."""
    app = client._transport.app  # type: ignore[attr-defined]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"auth.test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("auth.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


async def test_an_untrusted_client_cannot_name_another_host(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = configured(make_settings, tmp_path, CONFIG)
    async for client in _serve(settings, peer="203.0.113.7"):
        # Its X-Forwarded-* are not read: the document describes the host it called.
        sent = {"Host": "127.0.0.1:8001", **forwarded("mcp.example.com")}
        response = await client.get(PRM + "/mcp", headers=sent)
        assert response.status_code == 404
        root = await client.get(PRM, headers=sent)
        assert root.json()["resource"] == "http://127.0.0.1:8001"


async def test_without_resources_every_host_is_one_at_its_origin(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = configured(make_settings, tmp_path, CONFIG.partition("[[resources]]")[0])
    async for client in _serve(settings):
        root = await client.get(PRM, headers=forwarded("reports.example.com"))
        assert root.json() == {
            "resource": "https://reports.example.com",
            "authorization_servers": [ISSUER],
            # The scopes of the rules that can match this host, sorted.
            "scopes_supported": ["orders:write", "reports:read"],
            "bearer_methods_supported": ["header"],
        }
        path = await client.get(PRM + "/mcp", headers=forwarded("app.example.com"))
        assert path.json()["resource"] == "https://app.example.com/mcp"
        assert path.json()["scopes_supported"] == ["orders:write"]
        plain = await client.get(PRM, headers=forwarded("app.example.com", "http"))
        assert plain.status_code == 404  # neither https nor loopback


async def test_with_oauth_off_there_is_no_document(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "auth.toml").write_text(CONFIG)
    settings = make_settings(config=str(tmp_path / "auth.toml"))  # an http issuer: off
    assert not settings.oauth_active
    async for client in _serve(settings):
        response = await client.get(PRM + "/mcp", headers=forwarded("mcp.example.com"))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
