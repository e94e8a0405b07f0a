"""Who is calling ``/token`` and ``/revoke``: client authentication (RFC 6749 §2.3).

Three methods, the one the client registered and no other: ``client_secret_basic`` (the id
and secret percent-encoded, then Basic, RFC 6749 §2.3.1; the MCP SDK does exactly that),
``client_secret_post`` (both in the form), and ``none`` (the id alone: a public client, whose
codes PKCE binds). Sending two methods at once is refused. The MCP SDK also repeats
``client_id`` in the form beside Basic: accepted when it names the same client.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from ..db import Connection
from .clients import AuthMethod, Client, get_client
from .errors import InvalidClient, InvalidRequest, UnknownClient

# oauth-tools' fetcher of Client ID Metadata Documents: the client an https client_id names
# (fetched or cached), or an ``OAuthError`` (``InvalidClientDocument``).
DocumentFetcher = Callable[[str], Awaitable[Client]]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The client a request names, how, and the secret it sent (if any)."""

    client_id: str
    secret: str | None
    method: AuthMethod


def _basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise InvalidClient("the Authorization header must be Basic client credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise InvalidClient("the Basic credentials are not valid base64 of UTF-8") from e
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("the Basic credentials must be client_id:client_secret")
    return unquote(client_id, errors="strict"), unquote(secret, errors="strict")


def read_client_credentials(authorization: str | None, form: dict[str, str]) -> ClientCredentials:
    """The credentials of a token or revocation request; ``InvalidClient`` when there are
    none or they are malformed, ``InvalidRequest`` for two methods at once."""
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if authorization is not None:
        try:
            client_id, secret = _basic(authorization)
        except UnicodeDecodeError as e:
            raise InvalidClient("the Basic credentials are not valid percent-encoding") from e
        if form_secret is not None:
            raise InvalidRequest("client credentials sent both in Basic and in the form")
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id in the form differs from the Basic credentials")
        return ClientCredentials(client_id, secret, "client_secret_basic")
    if not form_id:
        raise InvalidClient("client authentication is required (client_id)")
    if form_secret is not None:
        return ClientCredentials(form_id, form_secret, "client_secret_post")
    return ClientCredentials(form_id, None, "none")


async def lookup_client(
    conn: Connection, client_id: str, fetch_document: DocumentFetcher | None = None
) -> Client:
    """The client ``client_id`` names: registered, or (an https URL, when metadata documents
    are accepted) described by its document; ``UnknownClient`` otherwise."""
    if client_id.startswith("https://"):
        if fetch_document is None:
            raise UnknownClient("unknown client")
        return await fetch_document(client_id)
    client = await get_client(conn, client_id)
    if client is None or client.kind != "registered":
        raise UnknownClient("unknown client")
    return client


async def authenticate_client(
    conn: Connection, credentials: ClientCredentials, fetch_document: DocumentFetcher | None
) -> Client:
    """The client, if it authenticated by the method it registered; ``InvalidClient`` else."""
    try:
        client = await lookup_client(conn, credentials.client_id, fetch_document)
    except UnknownClient as e:
        raise InvalidClient("client authentication failed") from e
    if credentials.method != client.token_endpoint_auth_method:
        raise InvalidClient(
            f"the client authenticates with {client.token_endpoint_auth_method}, "
            f"not {credentials.method}"
        )
    if not client.public and not client.secret_matches(credentials.secret or ""):
        raise InvalidClient("client authentication failed")
    return client
