"""The ``WWW-Authenticate`` values validate answers with (RFC 6750 §3, RFC 9728 §5.1).

An OAuth client (an MCP client, say) learns everything from them: where the protected-resource
metadata of the server it called is (``resource_metadata``), which scopes the request needs
(``scope``), and whether it should get a new token (401, ``invalid_token``) or more scopes
(403, ``insufficient_scope``).

Clients read these with naive patterns: the MCP SDK takes the first ``name=value`` match of
each name anywhere in the header, and no value may hold an escaped quote. So the attributes
come in a fixed order, ``resource_metadata`` and ``scope`` before ``error_description`` (our own
fixed text, which never holds ``=`` or a quote), and only values that need no escaping are
written: URLs built from a canonical origin and path, scope tokens of RFC 6749's character set.
Pure: no I/O, no HTTP framework.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REALM = 'Bearer realm="auth-service"'
# A scope token (RFC 6749 §3.3): printable ASCII but space, double quote and backslash.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# What a quoted attribute value may hold here without escaping: printable ASCII, no quote,
# no backslash (URLs of canonical origins and paths, scope lists, our descriptions).
_PLAIN_VALUE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_NOT_PLAIN = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def scope_value(scopes: Iterable[str]) -> str:
    """The ``scope`` attribute's value: the scope tokens, sorted, space-separated. A token
    outside RFC 6749's character set (no client could be granted it) is left out."""
    return " ".join(sorted(s for s in set(scopes) if _SCOPE_TOKEN.fullmatch(s)))


def unauthorized(
    *,
    resource_metadata: str | None = None,
    scopes: Iterable[str] = (),
    error_description: str | None = None,
) -> bytes:
    """A 401's challenge: the realm; the metadata URL and the scopes the request needs when
    it is on an OAuth resource; ``error="invalid_token"`` when a credential was sent."""
    parts = [REALM]
    if resource_metadata is not None:
        parts.append(_attribute("resource_metadata", resource_metadata))
        scope = scope_value(scopes)
        if scope:
            parts.append(_attribute("scope", scope))
    if error_description is not None:
        parts.append('error="invalid_token"')
        parts.append(_attribute("error_description", error_description))
    return ", ".join(parts).encode()


def insufficient_scope(scopes: Iterable[str], resource_metadata: str) -> bytes:
    """A 403's challenge when the token lacks scopes a rule requires: the client asks for a
    token with ``scope`` (step-up authorization)."""
    return ", ".join(
        (
            REALM,
            'error="insufficient_scope"',
            _attribute("scope", scope_value(scopes)),
            _attribute("resource_metadata", resource_metadata),
        )
    ).encode()


def _attribute(name: str, value: str) -> str:
    if not _PLAIN_VALUE.fullmatch(value):  # not expected: our own URLs and texts
        value = _NOT_PLAIN.sub("?", value)
    return f'{name}="{value}"'
