"""The authorization server's metadata document (RFC 8414), served at both well-known URLs.

The same document answers ``/.well-known/oauth-authorization-server`` and
``/.well-known/openid-configuration`` (clients try either). It claims nothing about ID tokens
(no ``id_token_signing_alg_values_supported``, no ``subject_types_supported``): we issue none,
we are not an OpenID provider, and MCP clients read the document as RFC 8414's. Pure: the
document is a function of the settings and the resources in force.
"""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from .resources import ResourceSet

OFFLINE_ACCESS = "offline_access"
GRANT_TYPES = ("authorization_code", "refresh_token")
CLIENT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


def server_metadata(
    settings: Settings, resources: ResourceSet, *, accepts_documents: bool
) -> dict[str, Any]:
    """The document, members in the order of RFC 8414 §2; ``accepts_documents``: https
    ``client_id``s are fetched (a fetcher is installed and ``AUTH_OAUTH_CIMD`` is on)."""
    issuer = settings.token_issuer
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/.well-known/jwks.json",
    }
    if settings.oauth_registration != "closed":
        document["registration_endpoint"] = issuer + "/register"
    document.update(
        {
            "scopes_supported": [*resources.all_scopes(), OFFLINE_ACCESS],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
            "revocation_endpoint": issuer + "/revoke",
            "revocation_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": accepts_documents,
        }
    )
    return document
