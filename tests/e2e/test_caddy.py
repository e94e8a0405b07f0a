"""Through the shipped ``caddy/Caddyfile`` only: what Caddy passes on that the other proxies
filter, and the login host's endpoints.

The tests every proxy shares (identity, forged identity headers, browser redirect, 401 for API
clients, the form login) are in ``test_proxies.py`` and run through Caddy too.
"""

from __future__ import annotations

import httpx
import pytest

from ..conftest import create_user
from .conftest import Stack
from .test_proxies import BROWSER, ORIGINAL_PATH, get_app, json_login, upstream_headers

pytestmark = pytest.mark.parametrize("stack", ["caddy"], indirect=True)


async def test_a_client_request_id_is_not_believed(stack: Stack, database_url: str) -> None:
    await create_user(database_url, "alice")
    token = await json_login(stack)
    forged = "forged-by-the-client"
    seen = upstream_headers(
        get_app(stack, Authorization=f"Bearer {token}", **{"X-Request-Id": forged})
    )
    (request_id,) = seen["x-request-id"]
    assert request_id != forged
    # validate logged the request under Caddy's id, the one the application got.
    assert f'"request_id": "{request_id}"' in stack.auth.log_text()
    assert forged not in stack.auth.log_text()
    refused = get_app(stack, Accept="application/json", **{"X-Request-Id": forged})
    assert refused.status_code == 401
    assert refused.json()["request_id"] != forged


async def test_underscore_look_alikes_of_identity_headers_are_dropped(
    stack: Stack, database_url: str
) -> None:
    """Some applications (CGI, PHP) read X_Auth_User as X-Auth-User."""
    await create_user(database_url, "alice")
    token = await json_login(stack)
    forged = {"X_Auth_User": "mallory", "X_AUTH_GROUPS": "admins"}
    for path in (ORIGINAL_PATH, "/public/page"):
        seen = upstream_headers(get_app(stack, path, Authorization=f"Bearer {token}", **forged))
        assert not [name for name in seen if name.startswith("x_auth")], seen


# Every spelling that auth-service would route to an operator endpoint.
OPERATOR_PATHS = [
    "/metrics",
    "/METRICS",
    "/%6detrics",
    "/metrics/",
    "/metrics?x=1",
    "/health",
    "/health/live",
    "/health/ready",
    "/Health/Ready",
    "/openapi.json",
    "/%6fpenapi.json",
]


async def test_login_host_does_not_publish_operator_endpoints(stack: Stack) -> None:
    for path in OPERATOR_PATHS:
        response = httpx.get(stack.url("auth", path), headers=stack.headers("auth"))
        assert response.status_code == 404, (path, response.text[:200])
        assert "auth_validate" not in response.text and "openapi" not in response.text
    # The same requests straight to auth-service do answer: Caddy is what keeps them inside.
    assert httpx.get(stack.auth.url + "/metrics").status_code == 200


@pytest.mark.parametrize("stack_env", [{"AUTH_API_DOCS": "true"}])
async def test_login_host_does_not_publish_the_api_docs(stack: Stack) -> None:
    for path in ("/docs", "/DOCS", "/docs/swagger-ui-bundle.js", "/%64ocs"):
        response = httpx.get(stack.url("auth", path), headers=stack.headers("auth"))
        assert response.status_code == 404, (path, response.text[:200])
        assert "swagger" not in response.text.lower()
    # Turned on, they answer on auth-service's own port: Caddy is what keeps them inside.
    assert httpx.get(stack.auth.url + "/docs").status_code == 200


async def test_login_host_serves_the_login_api_and_keys(stack: Stack) -> None:
    keys = httpx.get(stack.url("auth", "/.well-known/jwks.json"), headers=stack.headers("auth"))
    assert keys.status_code == 200 and keys.json()["keys"]
    page = httpx.get(stack.url("auth", "/login"), headers=stack.headers("auth", Accept=BROWSER))
    assert page.status_code == 200 and "<form" in page.text
