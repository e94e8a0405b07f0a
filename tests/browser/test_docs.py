"""``/docs`` in Debian's Chromium: Swagger UI renders every operation of our document, and
the page asks no other host for anything (it would be a gate loading scripts from a CDN)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext

from ..conftest import Served, drop_database
from .conftest import AUTH_HOST, _create_database, in_thread


def test_swagger_ui_renders_our_operations_from_our_own_files(
    serve: Callable[..., Served], server_url: str, context: BrowserContext
) -> None:
    database_url = in_thread(lambda: _create_database(server_url))
    try:
        _check_docs(serve(AUTH_DATABASE_URL=database_url, AUTH_API_DOCS="true"), context)
    finally:
        in_thread(lambda: drop_database(server_url, database_url))


def _check_docs(served: Served, context: BrowserContext) -> None:
    # A name other than localhost, as a deployment has (Swagger UI treats localhost apart).
    origin = f"http://{AUTH_HOST}:{served.port}"
    requested: list[str] = []
    refused: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{origin}/docs")
    page.locator(".opblock").first.wait_for()
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/auth/login" in summaries
    assert summaries.count("/api/v1/auth/validate") == 8  # every method
    assert {"/login", "/logout", "/health", "/metrics"} <= set(summaries)
    page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").first.click()
    page.get_by_text("the body is larger than 8192 bytes").first.wait_for()
    assert refused == []
    hosts = {urlsplit(url).netloc for url in requested if not url.startswith("data:")}
    assert hosts == {f"{AUTH_HOST}:{served.port}"}, requested
    assert f"{origin}/openapi.json" in requested
    assert f"{origin}/docs/swagger-ui-bundle.js" in requested
