"""``/docs``: Swagger UI over ``/openapi.json``, on only with ``AUTH_API_DOCS=true``.

A gate must not load scripts from elsewhere: Swagger UI's JavaScript and CSS come from the
``fastapi-offline`` package and are served by us, and the page's Content-Security-Policy
names exactly those files (and our own few lines that start it), by full URL. The page
fetches nothing but our own ``/openapi.json`` (and, for "Try it out", our own routes):
the plain layout has no badge from Swagger's public validator, and ``validatorUrl: null``
says so again should the layout change.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

DOCS_PATH = "/docs"
_BUNDLE = "swagger-ui-bundle.js"
_CSS = "swagger-ui.css"
_START = "start.js"
_ASSETS = {_BUNDLE: "text/javascript", _CSS: "text/css", _START: "text/javascript"}
_START_SCRIPT = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>auth-service API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{DOCS_PATH}/{_CSS}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_PATH}/{_BUNDLE}"></script>
<script src="{DOCS_PATH}/{_START}"></script>
</body>
</html>
"""
# An origin as a CSP source may name it: the request's own, of plain host characters.
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)

router = APIRouter(include_in_schema=False)


@cache
def _asset(name: str) -> bytes:
    if name == _START:
        return _START_SCRIPT
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


def _csp(origin: str) -> str:
    files = {name: f"{origin}{DOCS_PATH}/{name}" for name in _ASSETS}
    return (
        f"default-src 'none'; script-src {files[_BUNDLE]} {files[_START]}; "
        f"style-src {files[_CSS]}; img-src data:; connect-src 'self'; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


@router.get(DOCS_PATH)
async def docs_page(request: Request) -> Response:
    """The Swagger UI page."""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if not _ORIGIN.fullmatch(origin):
        raise HTTPException(400, "the Host header is not a host name")
    return HTMLResponse(
        _PAGE,
        headers={
            "content-security-policy": _csp(origin),
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
            "cache-control": "no-store",
        },
    )


@router.get(DOCS_PATH + "/{name}")
async def docs_asset(name: str) -> Response:
    """One of the page's files (and nothing else of the package)."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such file")
    return Response(
        _asset(name),
        media_type=media_type,
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )
