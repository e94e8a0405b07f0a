"""Dynamic client registration (RFC 7591): what a client may register, and the new client.

Validation is pure. Unknown members are ignored (RFC 7591 §2), but members that would ask us
for something we do not do are refused rather than silently dropped: keys (``jwks``,
``jwks_uri``) and software statements. An omitted ``token_endpoint_auth_method`` means
``client_secret_basic`` (RFC 7591 §2), and a client that is given a secret is told so in the
answer; the MCP SDK follows whatever the answer says.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from .clients import AUTH_METHODS, AuthMethod, Client, hash_secret
from .errors import InvalidClientMetadata
from .metadata import GRANT_TYPES
from .urls import validate_redirect_uri

MAX_REDIRECT_URIS = 10
MAX_NAME_LENGTH = 100
_REFUSED_MEMBERS = ("jwks", "jwks_uri", "software_statement")
_SCOPE_CHARACTERS = set(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


@dataclass(frozen=True, slots=True)
class Registration:
    """The accepted metadata of a registration request."""

    client_name: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    scope: str | None
    application_type: str


def _string_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings")
    return value


def check_registration(body: dict[str, Any], private_schemes: tuple[str, ...]) -> Registration:
    """The registration ``body`` asks for, or ``InvalidClientMetadata``/``InvalidRedirectUri``."""
    for member in _REFUSED_MEMBERS:
        if member in body:
            raise InvalidClientMetadata(f"{member} is not supported")
    uris = _string_list(body, "redirect_uris")
    if not uris:
        raise InvalidClientMetadata("redirect_uris is required: at least one redirect URI")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidClientMetadata(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    redirect_uris = tuple(dict.fromkeys(validate_redirect_uri(u, private_schemes) for u in uris))
    grant_types = _string_list(body, "grant_types") or ["authorization_code"]
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        raise InvalidClientMetadata(f"grant type not supported: {unknown[0][:40]!r}")
    if "authorization_code" not in grant_types:
        raise InvalidClientMetadata("grant_types must include authorization_code")
    response_types = _string_list(body, "response_types") or ["code"]
    if set(response_types) != {"code"}:
        raise InvalidClientMetadata('response_types must be ["code"]')
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(
            "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post"
        )
    name = body.get("client_name")
    if name is not None and (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > MAX_NAME_LENGTH
        or not name.isprintable()
    ):
        raise InvalidClientMetadata(
            f"client_name must be printable text of at most {MAX_NAME_LENGTH} characters"
        )
    scope = body.get("scope")
    if scope is not None and (
        not isinstance(scope, str)
        or len(scope) > 1000
        or not set(scope) <= _SCOPE_CHARACTERS | {" "}
    ):
        raise InvalidClientMetadata("scope must be space-separated scope tokens")
    application_type = body.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise InvalidClientMetadata("application_type must be web or native")
    return Registration(
        client_name=name.strip() if isinstance(name, str) else None,
        redirect_uris=redirect_uris,
        grant_types=tuple(dict.fromkeys(grant_types)),
        token_endpoint_auth_method=method,
        scope=scope,
        application_type=application_type,
    )


def new_client(registration: Registration) -> tuple[Client, dict[str, Any]]:
    """A client for ``registration`` and the answer to send (RFC 7591 §3.2.1): the secret,
    when the client has one, is in the answer only; the client keeps its hash."""
    client_id = "oc_" + secrets.token_urlsafe(16)
    secret = None
    if registration.token_endpoint_auth_method != "none":
        secret = secrets.token_urlsafe(32)
    answer: dict[str, Any] = {"client_id": client_id}
    if secret is not None:
        answer["client_secret"] = secret
        answer["client_secret_expires_at"] = 0  # never
    answer["client_id_issued_at"] = int(time.time())
    if registration.client_name is not None:
        answer["client_name"] = registration.client_name
    answer.update(
        {
            "redirect_uris": list(registration.redirect_uris),
            "grant_types": list(registration.grant_types),
            "response_types": ["code"],
            "token_endpoint_auth_method": registration.token_endpoint_auth_method,
            "application_type": registration.application_type,
        }
    )
    if registration.scope is not None:
        answer["scope"] = registration.scope
    stored = {k: v for k, v in answer.items() if k != "client_secret"}
    client = Client(
        client_id=client_id,
        kind="registered",
        client_name=registration.client_name,
        redirect_uris=registration.redirect_uris,
        grant_types=registration.grant_types,
        token_endpoint_auth_method=registration.token_endpoint_auth_method,
        secret_hash=hash_secret(secret) if secret is not None else None,
        metadata=stored,
    )
    return client, answer
