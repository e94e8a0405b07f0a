"""What ``/openapi.json`` says of the OAuth endpoints: bodies FastAPI does not read itself
(forms, the registration object) and every answer each endpoint can give."""

from __future__ import annotations

from typing import Any

from .bodies import MAX_FORM_NAMES
from .schemas import refusal

_STRING = {"type": "string", "pattern": "^[^\\x00-\\x08\\x0a-\\x1f]*$"}
_JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}
_EMPTY: dict[str, Any] = {"content": {}}


def _form_body(fields: list[str], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {**_STRING, "minLength": 1} if name in required else _STRING
                            for name in fields
                        },
                        "required": required,
                        "maxProperties": MAX_FORM_NAMES,
                    }
                }
            },
        }
    }


_FORM_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: refusal("a parameter is missing, repeated or wrong (RFC 6749 §5.2 codes)"),
    401: refusal(
        "client authentication failed (invalid_client)",
        headers={"WWW-Authenticate": 'Basic realm="auth-service"'},
    ),
    413: refusal("the form is larger than 8192 bytes"),
    415: refusal("the form is not application/x-www-form-urlencoded"),
    503: refusal("the database is unavailable"),
}

METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the metadata document", **_JSON_OBJECT},
}

REGISTER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["redirect_uris"],
                    "properties": {
                        "redirect_uris": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "maxItems": 10,
                        },
                        "client_name": {"type": "string", "maxLength": 100},
                        "grant_types": {"type": "array", "items": {"type": "string"}},
                        "response_types": {"type": "array", "items": {"type": "string"}},
                        "token_endpoint_auth_method": {
                            "type": "string",
                            "enum": ["none", "client_secret_basic", "client_secret_post"],
                        },
                        "scope": {"type": "string"},
                        "application_type": {"type": "string", "enum": ["web", "native"]},
                    },
                }
            }
        },
    }
}
REGISTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "the client, with its secret when it has one", **_JSON_OBJECT},
    400: refusal("invalid_client_metadata, invalid_redirect_uri, or a body that is not JSON"),
    401: refusal(
        "token mode: the initial access token is missing or wrong",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    403: refusal("registration is closed (access_denied)"),
    413: refusal("the body is larger than 16384 bytes"),
    415: refusal("the body is not application/json"),
    429: refusal(
        "too many registrations from this address",
        headers={"Retry-After": "seconds to wait"},
    ),
    503: refusal("the database is unavailable"),
}

TOKEN_BODY = _form_body(
    [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
        "refresh_token",
        "resource",
        "scope",
    ],
    ["grant_type"],
)
TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "an access token (and a refresh token)", **_JSON_OBJECT},
    **_FORM_REFUSALS,
}

REVOKE_BODY = _form_body(["token", "token_type_hint", "client_id", "client_secret"], ["token"])
REVOKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "revoked, or not a token of this client's (RFC 7009 §2.2)", **_EMPTY},
    **_FORM_REFUSALS,
}

AUTHORIZE_QUERY: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in (
            "response_type",
            "client_id",
            "redirect_uri",
            "state",
            "code_challenge",
            "code_challenge_method",
            "resource",
            "scope",
            "prompt",
            "flow_id",
        )
    ]
}
CONSENT_BODY = _form_body(["flow_id", "csrf_token", "decision"], ["flow_id", "decision"])
CONSENTS_REVOKE_BODY = _form_body(
    ["csrf_token", "client_id", "resource"], ["csrf_token", "client_id", "resource"]
)
