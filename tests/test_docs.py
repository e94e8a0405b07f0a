"""``/docs``: Swagger UI, off unless AUTH_API_DOCS=true, its files served by us under a CSP
that names exactly them. (The page in a real browser: tests/browser/test_docs.py.)"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from auth_service.app import create_app
from auth_service.settings import Settings


async def test_docs_are_off_by_default(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/redoc"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    assert (await client.get("/openapi.json")).status_code == 200


async def test_docs_when_on_serve_swagger_ui_from_us_under_an_exact_csp(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(api_docs=True), configure_logs=False)
    async with LifespanManager(app, startup_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            page = await c.get("/docs")
            bundle = await c.get("/docs/swagger-ui-bundle.js")
            css = await c.get("/docs/swagger-ui.css")
            start = await c.get("/docs/start.js")
            other = await c.get("/docs/oauth2-redirect.html")
            climbing = await c.get("/docs/..%2Fswagger-ui-bundle.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text and "http" not in page.text
    csp = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert csp["script-src"] == (
        "http://auth.test/docs/swagger-ui-bundle.js http://auth.test/docs/start.js"
    )
    assert csp["style-src"] == "http://auth.test/docs/swagger-ui.css"
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'"
    assert page.headers["x-frame-options"] == "DENY"
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "validatorUrl: null" in start.text  # no badge fetched from swagger.io
    assert other.status_code == 404 and climbing.status_code == 404


async def test_a_host_header_cannot_write_into_the_docs_csp(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(api_docs=True), configure_logs=False)
    async with LifespanManager(app, startup_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            response = await c.get("/docs", headers={"host": "evil.test; script-src *"})
    assert response.status_code == 400
    assert "content-security-policy" not in response.headers
