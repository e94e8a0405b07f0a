"""What FastAPI cannot derive for ``/openapi.json`` from the routes' own declarations.

- Validate is served ahead of the framework (``routes/validate.py``), so FastAPI never sees
  it: ``validate_router`` declares it, every method, for the document (its handler answers
  only before start-up, with a 503).
- Every answer carries ``X-Request-Id``; the credentials are security schemes (a Bearer
  token, or the session cookie, whose name depends on the settings); and FastAPI's own 422
  shape is replaced by ours, which is what ``routes/errors.py`` sends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from .errors import ErrorCode
from .routes.errors import error_response
from .routes.schemas import REFUSAL_MODELS, RuleDenied, refusal
from .settings import Settings

VALIDATE_PATH = "/api/v1/auth/validate"
VALIDATE_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

_TEXT = {"schema": {"type": "string"}}
_IDENTITY = {
    "X-Auth-User": "the user's name (empty on an anonymous rule)",
    "X-Auth-User-Id": "the user's id",
    "X-Auth-Groups": "the user's groups, comma-separated",
    "X-Auth-Scopes": "the token's scopes, space-separated",
    "X-Auth-Issuer": "an external issuer's URL, empty for our own users",
}

validate_router = APIRouter(tags=["validate"])


def _headers(described: dict[str, str]) -> dict[str, Any]:
    return {name: {"description": text, **_TEXT} for name, text in described.items()}


async def validate(
    accept: Annotated[str, Header(description="text/html: a browser")] = "",
    x_forwarded_method: Annotated[str, Header()] = "",
    x_forwarded_proto: Annotated[str, Header()] = "",
    x_forwarded_host: Annotated[str, Header()] = "",
    x_forwarded_uri: Annotated[str, Header()] = "",
    x_forwarded_for: Annotated[str, Header()] = "",
    x_original_uri: Annotated[str, Header(description="nginx")] = "",
    x_original_method: Annotated[str, Header(description="nginx")] = "",
    x_request_id: Annotated[str, Header(description="from a trusted proxy")] = "",
) -> Response:
    """The proxy's question, any method: the request it received, in the forwarded headers
    (only from a trusted proxy), and the client's credential (a Bearer token, or the
    session cookie)."""
    return error_response(ErrorCode.SERVICE_UNAVAILABLE, "starting up", 503)


_VALIDATE_DECLARATION: dict[str, Any] = dict(
    response_class=Response,
    summary="May this request pass, and as whom?",
    responses={
        200: {
            "description": "allowed: the identity in X-Auth-* headers",
            "headers": _headers(_IDENTITY),
        },
        302: {
            "description": "a browser's GET or HEAD without a valid credential: to the login page",
            "headers": _headers({"Location": "the login page, the original URL in rd"}),
        },
        400: refusal("the forwarded request is malformed, or its path is not canonical", page=True),
        401: refusal(
            "no valid credential",
            page=True,
            headers={
                "WWW-Authenticate": 'Bearer realm="auth-service", with error="invalid_token" '
                "when a credential was sent",
                "X-Auth-Redirect": "nginx only, for a browser: the login page",
                "X-Auth-Error": "nginx only: the error code",
            },
        ),
        403: refusal("an access rule denies", model=RuleDenied, page=True),
        414: refusal("the forwarded URI is longer than AUTH_MAX_FORWARDED_URI_LENGTH", page=True),
        431: refusal("the Cookie headers are longer than AUTH_MAX_COOKIE_HEADER_LENGTH", page=True),
        503: refusal("the service is starting up"),
    },
    openapi_extra={"security": [{"bearer": []}, {"session": []}, {}]},
)
for _method in VALIDATE_METHODS:  # one operation each, with an id of its own
    validate_router.add_api_route(
        VALIDATE_PATH,
        validate,
        methods=[_method],
        operation_id=f"validate_{_method.lower()}",
        **_VALIDATE_DECLARATION,
    )


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve ``document(app, settings)`` at ``app.openapi_url``."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, settings)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document of ``app``, completed."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for internal in ("HTTPValidationError", "ValidationError"):
        schemas.pop(internal, None)
    for model in REFUSAL_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "session": {"type": "apiKey", "in": "cookie", "name": settings.session_cookie_name},
    }
    request_id = {"description": "the request's id, as in our logs", **_TEXT}
    for operations in doc["paths"].values():
        for operation in operations.values():
            _no_null_body(operation)
            for status, answer in operation.get("responses", {}).items():
                if status == "422":
                    answer["description"] = "a field is missing, of the wrong type, or too long"
                    answer["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }
                answer.setdefault("headers", {})["X-Request-Id"] = request_id
    return doc


def _no_null_body(operation: dict[str, Any]) -> None:
    """An optional body is absent, never JSON ``null`` (FastAPI says ``anyOf [model,
    null]`` for ``Model | None``; ``null`` is refused like any body that is no object)."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        choices = media.get("schema", {}).get("anyOf")
        if choices:
            kept = [choice for choice in choices if choice.get("type") != "null"]
            if len(kept) == 1:
                media["schema"] = kept[0]
