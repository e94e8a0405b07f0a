"""An exception no handler expects, in any route: our JSON 500 with the request id (a page for
a browser), and one ERROR line that names the exception type (routes/last_resort.py)."""

from __future__ import annotations

import logging

import httpx
import pytest

from auth_service.app import AuthServiceApp


class Surprise(Exception):
    """Nothing in the service knows this one."""


@pytest.fixture
def raising_route(app: AuthServiceApp) -> str:
    """A route mounted by the test on the running application, that raises."""

    async def explode() -> None:
        raise Surprise("secret detail of the failure")

    app.router.add_api_route("/test-only/explode", explode, methods=["GET"])
    return "/test-only/explode"


async def test_an_unexpected_exception_in_a_route_is_our_json_500(
    client: httpx.AsyncClient, raising_route: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get(raising_route)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "error": "internal_error",
        "error_description": "internal error",
        "request_id": response.headers["x-request-id"],
    }
    assert "secret detail" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "Surprise" in errors[0].getMessage()
    # Nothing below ERROR carries the traceback.
    assert not [r for r in caplog.records if r.levelno < logging.ERROR and r.exc_info]


async def test_a_browser_gets_a_page_for_the_same_fault(
    client: httpx.AsyncClient, raising_route: str
) -> None:
    response = await client.get(raising_route, headers={"Accept": "text/html"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Internal Server Error" not in response.text


async def test_a_fault_in_a_real_route_is_our_json_500(
    app: AuthServiceApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert app.runtime is not None

    class BrokenKeys:
        def jwks(self) -> dict[str, object]:
            raise KeyError("kid")

    monkeypatch.setattr(app.runtime, "keys", BrokenKeys())
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert response.json()["request_id"] == response.headers["x-request-id"]
