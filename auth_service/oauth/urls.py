"""The URLs of OAuth: canonical form (issuer, resources), loopback hosts, redirect URIs.

Clients compare URLs as strings: the MCP SDK renders the issuer and the resource through
pydantic (lower-case scheme and host, no default port, no trailing slash) and compares the
result byte for byte with what we send back. So we hold every issuer and resource in that one
canonical form and refuse configurations that are not in it, rather than guess at equality.

Redirect URIs (RFC 8252, OAuth 2.1 §2.3.1): https, or http on a loopback host, or a private-use
scheme the operator allowed; never a fragment or userinfo; matched exactly, except that a
loopback http redirect may use any port (a native app listens on whatever port is free).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from .errors import InvalidRedirectUri

MAX_URL_LENGTH = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
# A path segment of unreserved and sub-delimiter characters (RFC 3986 §3.3), no percent:
# percent-encodings have several spellings of one path, and a resource must have exactly one.
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# Loopback names a redirect may use with any port (RFC 8252 §7.3, §8.3).
_LOOPBACK_REDIRECT_HOSTS = {"127.0.0.1", "[::1]", "localhost"}


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not), ``localhost`` and ``*.localhost`` (RFC 6761)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def _canonical_host(host: str) -> str | None:
    """The host as clients render it (lower case; IPv6 in brackets), or None if malformed."""
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    host = host.lower()
    return host if _HOST_NAME.fullmatch(host) else None


def canonical_origin(scheme: str, netloc: str) -> str | None:
    """``scheme://host[:port]`` with the default port dropped, or None when malformed.

    Takes a forwarded proto and host (``X-Forwarded-Proto``/``-Host``) as well as the parts of
    a configured URL: the one spelling every comparison uses.
    """
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in netloc:
        return None
    host, port = netloc, ""
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    elif ":" in netloc:
        host, _, port = netloc.rpartition(":")
    canonical_host = _canonical_host(host)
    if canonical_host is None:
        return None
    if port:
        if not port.isdigit() or not 0 < int(port) < 65_536:
            return None
        if int(port) != _DEFAULT_PORTS[scheme]:
            return f"{scheme}://{canonical_host}:{int(port)}"
    return f"{scheme}://{canonical_host}"


def canonical_path(path: str) -> str | None:
    """A path with no trailing slash (``""`` for the root), or None when it has dot segments,
    empty segments, percent-encodings or characters outside RFC 3986's path set."""
    if path in ("", "/"):
        return ""
    if not path.startswith("/") or path.endswith("/"):
        return None
    segments = path[1:].split("/")
    if any(s in (".", "..") or not _SEGMENT.fullmatch(s) for s in segments):
        return None
    return path


def canonical_url(url: str) -> str | None:
    """The canonical form of an http(s) URL without query, fragment or userinfo, else None."""
    if len(url) > MAX_URL_LENGTH or not url.isascii() or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return None
    origin = canonical_origin(parts.scheme, parts.netloc)
    path = canonical_path(parts.path)
    if origin is None or path is None:
        return None
    return origin + path


def https_or_loopback(url: str) -> bool:
    """https, or http on a loopback host: what we accept for an issuer or a resource."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    )


def check_canonical(url: str, *, allow_path: bool = True) -> str | None:
    """Why ``url`` cannot be an issuer or resource identifier as written (None: it can).

    The message says what to write instead when only the spelling is wrong.
    """
    canonical = canonical_url(url)
    if canonical is None:
        return (
            "not an absolute http(s) URL without query, fragment, userinfo, dot segments "
            "or percent-encodings"
        )
    if not https_or_loopback(canonical):
        return "must be https (http only on a loopback host: 127.0.0.1, ::1, localhost)"
    if not allow_path and urlsplit(canonical).path:
        return f"must have no path, use {urlsplit(canonical).scheme}://{urlsplit(canonical).netloc}"
    if canonical != url:
        return f"not canonical, use {canonical}"
    return None


def _loopback_redirect(parts: SplitResult) -> bool:
    host = parts.netloc.rpartition(":")[0] if parts.port is not None else parts.netloc
    return parts.scheme == "http" and host.lower() in _LOOPBACK_REDIRECT_HOSTS


def validate_redirect_uri(uri: str, private_schemes: tuple[str, ...] = ()) -> str:
    """``uri`` if a client may register it; ``InvalidRedirectUri`` saying why otherwise."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRedirectUri("a redirect URI must be a non-empty string")
    if len(uri) > MAX_URL_LENGTH:
        raise InvalidRedirectUri(f"a redirect URI is longer than {MAX_URL_LENGTH} characters")
    if not uri.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in uri):
        raise InvalidRedirectUri("a redirect URI must be printable ASCII without spaces")
    if "#" in uri:
        raise InvalidRedirectUri("a redirect URI must not have a fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise InvalidRedirectUri("a redirect URI must be an absolute URL") from e
    scheme = parts.scheme
    if not _SCHEME.fullmatch(scheme) or not uri.startswith(scheme + ":"):
        raise InvalidRedirectUri("a redirect URI must be absolute, with a lower-case scheme")
    if "@" in parts.netloc:
        raise InvalidRedirectUri("a redirect URI must not carry a user name or password")
    if scheme in _DEFAULT_PORTS:
        if not parts.hostname:
            raise InvalidRedirectUri("a redirect URI must name a host")
        if scheme == "http" and not _loopback_redirect(parts):
            raise InvalidRedirectUri(
                "an http redirect URI must be on a loopback host (127.0.0.1, [::1] or "
                "localhost); use https"
            )
        return uri
    if scheme in private_schemes:
        return uri
    raise InvalidRedirectUri(
        f"redirect URI scheme {scheme!r} is not allowed: use https, or http on a loopback host"
    )


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact string match; for a loopback http redirect the port may differ (RFC 8252 §7.3)."""
    if registered == presented:
        return True
    try:
        a, b = urlsplit(registered), urlsplit(presented)
        a_port, b_port = a.port, b.port  # ValueError for a malformed port
    except ValueError:
        return False
    del a_port, b_port
    if not (_loopback_redirect(a) and _loopback_redirect(b)):
        return False
    return (a.hostname, a.path, a.query) == (b.hostname, b.path, b.query) and "#" not in presented
