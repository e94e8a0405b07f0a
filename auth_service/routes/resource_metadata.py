"""The protected-resource metadata of every protected host (RFC 9728), per forwarded host.

The proxy routes ``/.well-known/oauth-protected-resource`` and
``/.well-known/oauth-protected-resource/<path>`` of each protected site here, without the auth
check: an MCP client reads it (from the URL in validate's 401) before it has a token, to find
the authorization server and the scopes. The document describes the resource the URL was built
from (RFC 9728 §3.3): the forwarded origin, plus the path of the path form. Clients compare its
``resource`` as a string with the server they called, so the origin is the canonical one
(lower-case host, no default port), as validate's 401 names it.

The origin is the proxy's ``X-Forwarded-Proto`` and ``-Host`` when the peer is a trusted proxy,
else the request's own scheme and ``Host``: a client cannot name another site through a proxy
we trust, and a direct request describes where it went. The path after the well-known prefix
is read as sent (raw), and must be canonical: a spelling that could reach another route of
ours, or describe another resource, is refused with 400, never tidied.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from ..metrics import count_oauth
from ..oauth.resources import METADATA_PATH, Resource
from ..oauth.urls import canonical_origin, canonical_path
from ..runtime import Runtime
from .dependencies import RuntimeDep
from .schemas import refusal

router = APIRouter(tags=["oauth"])
_PREFIX = METADATA_PATH.encode()
_HEADERS = {"cache-control": "max-age=300", "access-control-allow-origin": "*"}
# What the document says of ``<path>``: one segment of unreserved characters, not "." or ".."
# (the spelling a generated request can send without escapes). The route takes several
# segments too; a spelling that is not canonical gets the declared 400.
_SEGMENT = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+"
_PATH_DOCUMENTED = Path(
    description="the resource's path without its leading '/', e.g. 'mcp'",
    json_schema_extra={"pattern": f"^(?:{_SEGMENT})$"},
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: refusal("the path after the well-known prefix, or the forwarded host, is not canonical"),
    404: refusal("OAuth is off, or no resource is at this URL"),
}


@router.get(METADATA_PATH, responses=_RESPONSES)
async def resource_metadata(request: Request, runtime: RuntimeDep) -> Response:
    """The metadata of the resource at the forwarded origin (root form)."""
    return _answer(request, runtime)


@router.get(METADATA_PATH + "/{path:path}", responses=_RESPONSES)
async def resource_metadata_of_path(
    request: Request, runtime: RuntimeDep, path: Annotated[str, _PATH_DOCUMENTED]
) -> Response:
    """The metadata of the resource at the forwarded origin plus ``/<path>`` (path form)."""
    return _answer(request, runtime)


def _answer(request: Request, runtime: Runtime) -> Response:
    """The document, counted in ``auth_oauth_requests_total{endpoint="resource_metadata"}``
    (``ok``, ``not_found`` or ``invalid_request``)."""
    try:
        response = _document_response(request, runtime)
    except HTTPException as refusal:
        count_oauth(
            "resource_metadata", "not_found" if refusal.status_code == 404 else "invalid_request"
        )
        raise
    count_oauth("resource_metadata", "ok")
    return response


def _document_response(request: Request, runtime: Runtime) -> Response:
    resources = runtime.oauth_resources
    if resources is None:
        raise HTTPException(404, "OAuth is off: no protected-resource metadata")
    raw = (request.scope.get("raw_path") or request.url.path.encode()).partition(b"?")[0]
    suffix = raw[len(_PREFIX) :].decode("latin-1")
    path = canonical_path(suffix) if raw.startswith(_PREFIX) else None
    if path is None or path != suffix:
        raise HTTPException(400, "the resource path is not canonical")
    origin = _origin(request, runtime)
    if origin is None:
        raise HTTPException(400, "the host is not a canonical host name")
    resource = resources.get(origin + path)
    if resource is None or resource.url != origin + path:
        raise HTTPException(404, f"no protected resource at {origin}{path}")
    return JSONResponse(_document(resource, runtime.settings.token_issuer), headers=_HEADERS)


def _origin(request: Request, runtime: Runtime) -> str | None:
    """The canonical origin the client called: the trusted proxy's word, else our own."""
    headers = request.headers
    proto, host = request.url.scheme, headers.get("host", "")
    peer = request.client.host if request.client else None
    if peer in runtime.trusted_proxies:
        proto = headers.get("x-forwarded-proto", proto).split(",")[0].strip()
        host = headers.get("x-forwarded-host", host).split(",")[0].strip()
    return canonical_origin(proto, host)


def _document(resource: Resource, issuer: str) -> dict[str, Any]:
    """RFC 9728 §2. ``offline_access`` is never among the scopes: it belongs to the
    authorization server's metadata (MCP authorization, "Scope selection")."""
    document: dict[str, Any] = {
        "resource": resource.url,
        "authorization_servers": [issuer],
        "scopes_supported": [s for s in resource.scopes if s != "offline_access"],
        "bearer_methods_supported": ["header"],
    }
    if resource.name:
        document["resource_name"] = resource.name
    return document
