"""Client ID Metadata Documents: a ``client_id`` that is an https URL names its own metadata.

draft-ietf-oauth-client-id-metadata-document lets a client skip registration: its id is the
URL of a JSON document that lists its redirect URIs, and we fetch it. Fetching a URL that a
stranger chose is a server-side request forgery waiting to happen, so the fetch is fenced:

- the id must be an https URL with a path, without fragment, user info or dot segments;
- we resolve the host ourselves and refuse if any address is not public (loopback, private,
  link-local, shared, reserved, multicast; IPv4 inside IPv6 included), unless the operator
  allows private addresses for development; then we connect to the address we checked,
  giving the name only as ``Host`` and TLS server name, so a second DNS answer (rebinding)
  cannot send us elsewhere, and the certificate is still checked against the name;
- no redirects (a 3xx is a refusal), status 200 and ``application/json`` only, at most
  ``max_bytes`` read, and the whole fetch (DNS included) within ``timeout_seconds``;
- the document must name itself (``client_id`` equal to the URL, compared as strings, as the
  draft asks), carry no secret, authenticate with ``none``, and list redirect URIs that pass
  the same checks as registered ones.

How long a document may be used comes from its ``Cache-Control`` (or ``Expires``), clamped to
[60 s, 24 h] so that a document cannot pin itself forever nor make us fetch on every request.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .addresses import public_address
from .errors import InvalidClientDocument, InvalidRedirectUri
from .urls import validate_redirect_uri

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "CACHE_DEFAULT_SECONDS",
    "CACHE_MAX_SECONDS",
    "CACHE_MIN_SECONDS",
    "CimdPolicy",
    "ClientDocument",
    "cimd_http_client",
    "fetch_client_document",
    "is_client_id_url",
]

CACHE_MIN_SECONDS = 60
CACHE_MAX_SECONDS = 86_400
CACHE_DEFAULT_SECONDS = 300
_MAX_CLIENT_ID_LENGTH = 2000
# Members that only a confidential client has: a document is public, so it must not hold them.
_SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})


@dataclass(frozen=True, slots=True)
class CimdPolicy:
    """The fences of a fetch, from ``AUTH_OAUTH_CIMD_*``."""

    allow_private: bool = False
    max_bytes: int = 5120
    timeout_seconds: float = 5.0
    ca_file: Path | None = None
    redirect_schemes: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> CimdPolicy:
        return cls(
            allow_private=settings.oauth_cimd_allow_private,
            max_bytes=settings.oauth_cimd_max_bytes,
            timeout_seconds=settings.oauth_cimd_timeout_seconds,
            ca_file=settings.oauth_cimd_ca_file,
            redirect_schemes=tuple(settings.oauth_redirect_schemes),
        )


@dataclass(frozen=True, slots=True)
class ClientDocument:
    """An accepted metadata document and until when it may be used without fetching again."""

    client_id: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    metadata: dict[str, Any]
    expires_at: datetime


def is_client_id_url(client_id: str) -> bool:
    """Whether ``client_id`` claims to be a metadata document URL (then it is fetched)."""
    return client_id[:8].lower() == "https://"


def cimd_http_client(policy: CimdPolicy) -> httpx.AsyncClient:
    """The HTTP client the fetcher needs: no redirects, no proxy from the environment, and no
    kept-alive connections, because the pool is keyed by address and a connection whose
    certificate was checked for one name must never carry a request for another."""
    verify: ssl.SSLContext | bool = True
    if policy.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(policy.ca_file))
    return httpx.AsyncClient(
        verify=verify,
        follow_redirects=False,
        trust_env=False,
        timeout=policy.timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def fetch_client_document(
    client_id: str, http: httpx.AsyncClient, policy: CimdPolicy
) -> ClientDocument:
    """Fetch, check and return the metadata document that ``client_id`` names.

    Raises ``InvalidClientDocument`` with a description an operator can act on."""
    host, port = _check_client_id(client_id)
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            address = await public_address(host, port, allow_private=policy.allow_private)
            body, headers = await _get(client_id, host, port, address, http, policy.max_bytes)
    except TimeoutError:
        raise InvalidClientDocument(
            f"client metadata document: no answer within {policy.timeout_seconds:g} s"
        ) from None
    document = _parse(body, client_id, policy.redirect_schemes)
    return ClientDocument(
        client_id=client_id,
        client_name=document.get("client_name"),
        redirect_uris=tuple(document["redirect_uris"]),
        grant_types=tuple(document.get("grant_types", ["authorization_code"])),
        metadata=document,
        expires_at=datetime.now(UTC) + timedelta(seconds=cache_seconds(headers)),
    )


# -- the URL ----------------------------------------------------------------------------------


def _check_client_id(client_id: str) -> tuple[str, int]:
    if len(client_id) > _MAX_CLIENT_ID_LENGTH:
        raise InvalidClientDocument("client_id URL is longer than 2000 characters")
    if not client_id.isascii():
        # One spelling per client: an internationalised name is written in punycode.
        raise InvalidClientDocument("client_id URL must be ASCII (punycode for the host)")
    try:
        parts = urlsplit(client_id)
        port = 443 if parts.port is None else parts.port
    except ValueError as e:
        raise InvalidClientDocument(f"client_id is not a valid URL: {e}") from None
    if port == 0:
        raise InvalidClientDocument("client_id is not a valid URL: port 0")
    host = parts.hostname
    if parts.scheme != "https" or not host:
        raise InvalidClientDocument("client_id URL must be https with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidClientDocument("client_id URL must not contain user info")
    if parts.fragment or "#" in client_id:
        raise InvalidClientDocument("client_id URL must not contain a fragment")
    segments = parts.path.split("/")[1:]
    if not parts.path or parts.path == "/":
        raise InvalidClientDocument("client_id URL must have a path")
    if any(s in (".", "..") or s.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for s in segments):
        raise InvalidClientDocument("client_id URL must not contain dot segments")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in client_id):
        raise InvalidClientDocument("client_id URL must not contain spaces or control characters")
    return host, port


# -- the fetch --------------------------------------------------------------------------------


async def _get(
    client_id: str, host: str, port: int, address: str, http: httpx.AsyncClient, max_bytes: int
) -> tuple[bytes, httpx.Headers]:
    parts = urlsplit(client_id)
    netloc = f"[{address}]" if ":" in address else address
    target = parts._replace(netloc=f"{netloc}:{port}").geturl()
    host_header = host if port == 443 else f"{host}:{port}"
    if ":" in host:
        host_header = f"[{host}]" if port == 443 else f"[{host}]:{port}"
    request = http.build_request(
        "GET",
        target,
        # Identity only: the size cap counts the bytes we parse, and a compressed body could
        # expand far beyond it in one chunk.
        headers={"Host": host_header, "Accept": "application/json", "Accept-Encoding": "identity"},
        extensions={"sni_hostname": host},
    )
    try:
        response = await http.send(request, stream=True, follow_redirects=False)
    except httpx.HTTPError as e:
        raise InvalidClientDocument(f"client metadata document: fetch failed: {e}") from None
    try:
        if response.is_redirect:
            raise InvalidClientDocument(
                f"client metadata document: answered {response.status_code}; redirects are "
                "not followed"
            )
        if response.status_code != 200:
            raise InvalidClientDocument(
                f"client metadata document: answered {response.status_code}, not 200"
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise InvalidClientDocument(
                f"client metadata document: sent with content-encoding {encoding}; "
                "identity was asked"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise InvalidClientDocument(
                "client metadata document: content-type is not application/json"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(max_bytes)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(max_bytes)
        return bytes(body), response.headers
    except httpx.HTTPError as e:
        raise InvalidClientDocument(f"client metadata document: fetch failed: {e}") from None
    finally:
        await response.aclose()


def _too_large(max_bytes: int) -> InvalidClientDocument:
    return InvalidClientDocument(f"client metadata document: larger than {max_bytes} bytes")


def cache_seconds(headers: httpx.Headers) -> int:
    """How long a document may be used: ``max-age`` (or ``Expires``) clamped to the bounds;
    ``no-store``/``no-cache`` mean the minimum, nothing said means the default."""
    directives = {
        name.strip().lower(): value.strip().strip('"')
        for name, _, value in (
            item.partition("=") for item in headers.get("cache-control", "").split(",")
        )
        if name.strip()
    }
    seconds: float = CACHE_DEFAULT_SECONDS
    if "no-store" in directives or "no-cache" in directives:
        seconds = CACHE_MIN_SECONDS
    elif directives.get("max-age", "").isdigit():
        seconds = int(directives["max-age"])
    elif "expires" in headers:
        try:
            expires = parsedate_to_datetime(headers["expires"])
            seconds = (expires - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            seconds = CACHE_MIN_SECONDS  # RFC 9111 §5.3: an invalid date means "expired"
    return int(min(max(seconds, CACHE_MIN_SECONDS), CACHE_MAX_SECONDS))


# -- the document -----------------------------------------------------------------------------


def _parse(body: bytes, client_id: str, redirect_schemes: tuple[str, ...]) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidClientDocument("client metadata document is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidClientDocument("client metadata document is not a JSON object")
    if document.get("client_id") != client_id:
        raise InvalidClientDocument(
            "client metadata document: its client_id is not the URL it was fetched from"
        )
    for member in _SECRET_MEMBERS:
        if member in document:
            raise InvalidClientDocument(f"client metadata document must not contain {member}")
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise InvalidClientDocument(
            "client metadata document: token_endpoint_auth_method must be none"
        )
    name = document.get("client_name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 100):
        raise InvalidClientDocument("client metadata document: client_name is not 1-100 chars")
    grants = document.get("grant_types", ["authorization_code"])
    if (
        not isinstance(grants, list)
        or "authorization_code" not in grants
        or not set(grants) <= _GRANT_TYPES
    ):
        raise InvalidClientDocument(
            "client metadata document: grant_types must be authorization_code (and refresh_token)"
        )
    if document.get("response_types", ["code"]) != ["code"]:
        raise InvalidClientDocument('client metadata document: response_types must be ["code"]')
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= 10:
        raise InvalidClientDocument("client metadata document: redirect_uris must list 1 to 10")
    for uri in uris:
        try:
            validate_redirect_uri(uri, redirect_schemes)
        except InvalidRedirectUri as e:
            raise InvalidClientDocument(f"client metadata document: {e.description}") from None
    return document
