"""What the proxy tells us: trusted peers, the original request, its canonical path."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib.parse import unquote

from .logs import acceptable_request_id, new_request_id
from .settings import IPNetwork


class TrustedProxies:
    """Membership test of a peer address in the configured networks, memoised.

    The memo is bounded: a proxy fleet has few addresses, but a flood of direct clients must
    not grow it without end.
    """

    _MEMO_LIMIT = 4096

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self._memo: dict[str, tuple[str | None, bool]] = {}

    def _lookup(self, host: str) -> tuple[str | None, bool]:
        """(the address in canonical form or None when ``host`` is not one, trusted?)."""
        if len(host) > _MAX_ADDRESS_LENGTH:
            return _NOT_AN_ADDRESS  # and not remembered: the memo holds short strings only
        known = self._memo.get(host)
        if known is not None:
            return known
        address = _parse_address(host)
        trusted = address is not None and any(address in network for network in self.networks)
        known = (str(address) if address is not None else None, trusted)
        if len(self._memo) >= self._MEMO_LIMIT:
            self._memo.clear()
        self._memo[host] = known
        return known

    def __contains__(self, host: object) -> bool:
        # A Unix socket path or a name is not an address we can vouch for.
        return isinstance(host, str) and self._lookup(host)[1]

    def canonical(self, host: str) -> str | None:
        """``host`` as one spelling of an IP address (``::ffff:192.0.2.1`` is ``192.0.2.1``,
        a port is dropped), or None when it is not an address."""
        return self._lookup(host)[0]


# "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" is 53 characters; a zone id may add
# a few. Anything longer is not an address, and is refused without being parsed.
_MAX_ADDRESS_LENGTH = 64
_NOT_AN_ADDRESS: tuple[str | None, bool] = (None, False)


def _parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address, also as some proxies write it in X-Forwarded-For: with a port
    (``192.0.2.1:5000``, ``[2001:db8::1]:5000``) or in brackets."""
    text = host.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def choose_request_id(client: object, supplied: bytes | None, trusted: TrustedProxies) -> str:
    """The proxy's ``X-Request-Id`` when the peer is a trusted proxy and the id is plain
    enough to log; a fresh id otherwise."""
    if supplied is not None and isinstance(client, list | tuple) and client[0] in trusted:
        accepted = acceptable_request_id(supplied)
        if accepted is not None:
            return accepted
    return new_request_id()


class UnsafePath(ValueError):
    """A forwarded request we refuse to decide on (400): a path that is not canonical, a
    malformed escape or host, a control character."""

    status = 400


class ForwardedUriTooLong(UnsafePath):
    """A forwarded URI over the configured length (414), refused before it is read."""

    status = 414


DEFAULT_MAX_URI_LENGTH = 8192

# A canonical path with nothing to decode, the usual case: "/" or non-empty segments of
# plain characters (no "%", "\\", ";" or "#"), none of them "." or "..", and at most one
# trailing "/". Anything else takes the long way, which refuses or decodes it.
_PLAIN = re.compile(r"/|(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9\-._~!$&'()*+,=:@]+)+/?")

# Escapes an upstream would decode into something the rules did not see: unreserved
# characters (RFC 3986 2.3: "/%61dmin" is "/admin" to most servers), the separators "/" and
# "\\", ";" (path parameters), "%" (a second decoding), "?" and "#", and control characters.
_REFUSED_ESCAPES = re.compile(
    "%(?:"
    + "|".join(
        f"{byte:02X}"
        for byte in (
            *range(0x20),
            0x7F,
            *b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
            *b"/\\;%?#",
        )
    )
    + ")",
    re.IGNORECASE,
)
_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_REFUSED_CHARACTERS = {"\\": "a '\\'", ";": "a ';'", "#": "a '#'"}


def canonical_path(uri: str) -> str:
    """The path of a forwarded URI (printable ASCII), decoded once, if it is canonical.

    Rules are decided on exactly what the upstream receives, so a path that an upstream
    could read as another one is refused (``UnsafePath``), never rewritten: "." or ".."
    segments, empty segments ("//"; a trailing "/" is fine), ";", "\\", "#", malformed
    escapes, and the escapes in ``_REFUSED_ESCAPES``. The other escapes (a space, UTF-8,
    reserved characters such as "%40") are decoded, as upstreams decode them; the result
    must be UTF-8 and printable. The query is not part of the path.
    """
    path = uri.partition("?")[0]
    if _PLAIN.fullmatch(path):
        return path  # the usual case: nothing to refuse or decode
    return _canonical_long_way(path)


def _canonical_long_way(path: str) -> str:
    """``canonical_path`` of a path without its query, every check made."""
    for character, name in _REFUSED_CHARACTERS.items():
        if character in path:
            raise UnsafePath(f"the forwarded path is not canonical: {name}")
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise UnsafePath("the forwarded path is not canonical: a '.' or '..' segment")
    if "" in segments[1:-1]:
        raise UnsafePath("the forwarded path is not canonical: an empty segment ('//')")
    if "%" not in path:
        return path
    if _MALFORMED_ESCAPE.search(path):
        raise UnsafePath("malformed percent-escape in the forwarded path")
    refused = _REFUSED_ESCAPES.search(path)
    if refused:
        raise UnsafePath(f"the forwarded path is not canonical: {refused.group().upper()}")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError as e:
        raise UnsafePath("the forwarded path's escapes are not UTF-8") from e
    if not decoded.isprintable():
        raise UnsafePath("the forwarded path escapes an invisible or control character")
    return decoded


class ForwardedRequest(NamedTuple):
    """The original request, as the proxy told us (or as far as we know it).

    A named tuple rather than a frozen dataclass: just as immutable, and built several
    times faster, which counts on a path taken by every request.
    """

    method: str
    proto: str
    host: str
    uri: str  # path and query as the proxy forwards them
    path: str  # the canonical path, decoded once: what the access rules match
    client_ip: str | None
    from_proxy: bool  # the forwarded headers came from a trusted proxy
    nginx: bool = False  # nginx's auth_request conventions (X-Original-URI)

    @property
    def url(self) -> str | None:
        """The original absolute URL, when a trusted proxy told us its parts."""
        if not self.from_proxy or not self.host:
            return None
        return f"{self.proto}://{self.host}{self.uri}"


_FORWARDED_HEADERS = {
    b"x-forwarded-method": "method",
    b"x-original-method": "method",
    b"x-forwarded-proto": "proto",
    b"x-forwarded-host": "host",
    b"x-forwarded-uri": "uri",
    b"x-original-uri": "uri",
    b"x-forwarded-for": "for",
}
FORWARDED_HEADER_NAMES = frozenset(_FORWARDED_HEADERS)
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_METHOD = re.compile(r"[A-Z]{1,16}")


def read_forwarded(
    headers: Sequence[tuple[bytes, bytes]],
    client: object,
    trusted: TrustedProxies,
    max_uri_length: int = DEFAULT_MAX_URI_LENGTH,
) -> ForwardedRequest:
    """The original request from ``X-Forwarded-*`` / ``X-Original-*`` of a trusted proxy.

    Headers from any other peer are ignored. Only these exact names count: look-alikes such
    as ``X_Forwarded_Uri`` or dotted forms are different headers and never read. The first
    value of a repeated header wins, except for ``X-Forwarded-For``, a list whose lines are
    joined. Raises ``UnsafePath`` for a request that must be refused: a URI over
    ``max_uri_length`` (``ForwardedUriTooLong``, before anything reads it), a path that is
    not canonical, a malformed host.
    """
    peer = client[0] if isinstance(client, list | tuple) and client else None
    found: dict[str, str] = {}
    nginx = False
    if headers and peer in trusted:
        for name, value in headers:
            field = _FORWARDED_HEADERS.get(name)
            if field is None:
                continue
            if field not in found:
                found[field] = value.decode("latin-1").strip()
                nginx = nginx or name == b"x-original-uri"
            elif field == "for":  # a list: every line counts, in order
                found[field] += "," + value.decode("latin-1")
    if not found:  # a direct request, or one from a peer we do not trust
        return ForwardedRequest("GET", "http", "", "/", "/", peer, from_proxy=False)
    method = found.get("method", "GET").upper()
    if not _METHOD.fullmatch(method):
        method = "GET"
    proto = found.get("proto", "http").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "http"
    host = found.get("host", "").split(",")[0].strip()
    if host and not _HOST.fullmatch(host):
        raise UnsafePath("malformed forwarded host")
    uri = found.get("uri", "/") or "/"
    if len(uri) > max_uri_length:
        raise ForwardedUriTooLong(f"the forwarded URI is longer than {max_uri_length} characters")
    if not uri.startswith("/"):
        raise UnsafePath("the forwarded URI is not a path")
    # Printable ASCII without the space (0x21-0x7E), tested in C rather than per character.
    if not (uri.isascii() and uri.isprintable()) or " " in uri:
        raise UnsafePath("control or non-ASCII character in the forwarded URI")
    return ForwardedRequest(
        method=method,
        proto=proto,
        host=host.lower(),
        uri=uri,
        path=canonical_path(uri),
        client_ip=client_address(peer, found.get("for"), trusted),
        from_proxy=True,
        nginx=nginx,
    )


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: TrustedProxies
) -> str | None:
    """The address of the client, as far as we can vouch for it.

    From any peer but a trusted proxy: the peer itself, whatever ``X-Forwarded-For`` says.
    From a trusted proxy: walking ``X-Forwarded-For`` from the right, the first hop that is
    not a trusted proxy. Each trusted hop vouches for the hop it wrote to its left; the
    first untrusted one is the client, and what it sent further left (a forged list, say) is
    never read. A hop that is not an address ends the walk at the trusted hop that wrote it.
    With every hop trusted, the leftmost one. Repeated headers must be joined with commas,
    in order, before the call (HAProxy adds a header line rather than extending one).
    """
    if not forwarded_for or peer not in trusted:
        return peer
    nearest = trusted.canonical(peer) if peer else peer
    for hop in reversed(forwarded_for.split(",")):
        address = trusted.canonical(hop.strip())
        if address is None:
            return nearest
        if address not in trusted:
            return address
        nearest = address
    return nearest
