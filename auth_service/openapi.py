"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

Written by hand (the validate fast path and the form endpoints are not framework routes), and
used by the fuzz tests (schemathesis) to generate hostile requests for every operation.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "rule": {"type": ["string", "null"]},
        "retry_after": {"type": "integer"},
    },
}
_TOKENS = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "refresh_token"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "refresh_token": {"type": "string"},
        "refresh_expires_in": {"type": "integer"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json({"$ref": "#/components/schemas/Error"})}


def _error_or_page(description: str) -> dict[str, Any]:
    """A refusal: our JSON error, or a page for a client that asks for HTML (a browser)."""
    answer = _error(description)
    answer["content"]["text/html"] = {"schema": {"type": "string"}}
    return answer


_FORWARDED = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
    for name in (
        "Authorization",
        "Cookie",
        "Accept",
        "X-Forwarded-Method",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Uri",
        "X-Forwarded-For",
        "X-Original-URI",
        "X-Original-Method",
        "X-Request-Id",
    )
]
_VALIDATE = {
    "summary": "May this request pass, and as whom?",
    "parameters": _FORWARDED,
    "responses": {
        "200": {"description": "allowed; identity in X-Auth-* headers"},
        "302": {"description": "a browser without a credential: to the login page"},
        "400": _error_or_page("the forwarded request is malformed, or its path is not canonical"),
        "401": _error_or_page("no valid credential"),
        "403": _error_or_page("an access rule denies"),
        "414": _error_or_page("the forwarded URI is longer than AUTH_MAX_FORWARDED_URI_LENGTH"),
        "431": _error_or_page("the Cookie headers are longer than AUTH_MAX_COOKIE_HEADER_LENGTH"),
    },
}
_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}
_REFRESH = {
    "type": "object",
    "required": ["refresh_token"],
    "properties": {"refresh_token": {"type": "string"}},
}
_FORM = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "csrf_token": {"type": "string"},
        "rd": {"type": "string"},
    },
}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
_COMMON_4XX = {
    "400": _error("malformed request"),
    "413": _error("body too large"),
    "415": _error("wrong content type"),
    "422": _error("invalid fields"),
}
# The HTML forms: a browser gets the form again with a message, other clients our JSON.
_FORM_4XX = {
    "400": _error_or_page("malformed form"),
    "413": _error_or_page("form too large"),
    "415": _error_or_page("wrong content type"),
}


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "auth-service", "version": "1"},
        "components": {"schemas": {"Error": _ERROR, "Tokens": _TOKENS}},
        "paths": {
            "/api/v1/auth/validate": {"get": _VALIDATE, "post": _VALIDATE},
            "/api/v1/auth/login": {
                "post": {
                    "requestBody": {"required": True, **_json(_CREDENTIALS)},
                    "responses": {
                        "200": {
                            "description": "tokens",
                            **_json({"$ref": "#/components/schemas/Tokens"}),
                        },
                        "401": _error("invalid credentials"),
                        "429": _error("too many failed attempts"),
                        **_COMMON_4XX,
                    },
                }
            },
            "/api/v1/auth/refresh": {
                "post": {
                    "requestBody": {"required": True, **_json(_REFRESH)},
                    "responses": {
                        "200": {
                            "description": "tokens",
                            **_json({"$ref": "#/components/schemas/Tokens"}),
                        },
                        "401": _error("refused refresh token"),
                        **_COMMON_4XX,
                    },
                }
            },
            "/api/v1/auth/logout": {
                "post": {
                    "parameters": [_FORWARDED[0]],
                    "requestBody": {"required": False, **_json(_REFRESH)},
                    "responses": {
                        "200": {"description": "the session has ended"},
                        "401": _error("no session for this credential"),
                        **_COMMON_4XX,
                    },
                }
            },
            "/login": {
                "get": {
                    "parameters": [{"name": "rd", "in": "query", "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "the form", **_HTML},
                        "400": _error_or_page("bad rd"),
                    },
                },
                "post": {
                    "requestBody": {
                        "content": {"application/x-www-form-urlencoded": {"schema": _FORM}}
                    },
                    "responses": {
                        "303": {"description": "signed in"},
                        "401": {"description": "wrong credentials", **_HTML},
                        "403": {"description": "CSRF or origin check failed", **_HTML},
                        "429": {"description": "throttled", **_HTML},
                        **_FORM_4XX,
                    },
                },
            },
            "/logout": {
                "get": {
                    "responses": {
                        "200": {"description": "confirmation", **_HTML},
                        "400": _error_or_page("bad rd"),
                    }
                },
                "post": {
                    "requestBody": {
                        "content": {"application/x-www-form-urlencoded": {"schema": _FORM}}
                    },
                    "responses": {
                        "303": {"description": "signed out"},
                        "403": {"description": "CSRF or origin check failed", **_HTML},
                        **_FORM_4XX,
                    },
                },
            },
            "/.well-known/jwks.json": {"get": {"responses": {"200": {"description": "JWKS"}}}},
            "/health/live": {"get": {"responses": {"200": {"description": "up"}}}},
            "/health/ready": {
                "get": {
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    }
                }
            },
            "/health": {
                "get": {
                    "responses": {
                        "200": {"description": "summary"},
                        "503": {"description": "unhealthy"},
                    }
                }
            },
            "/metrics": {
                "get": {
                    "responses": {
                        "200": {"description": "Prometheus text"},
                        "403": _error("not allowed"),
                    }
                }
            },
        },
    }
