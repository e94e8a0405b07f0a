"""What the proxy tells us: trusted peers, the original request, its normalised path."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

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
        self._memo: dict[str, bool] = {}

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        known = self._memo.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            trusted = False  # a Unix socket path or a name: not an address we can vouch for
        else:
            trusted = any(address in network for network in self.networks)
        if len(self._memo) >= self._MEMO_LIMIT:
            self._memo.clear()
        self._memo[host] = trusted
        return trusted


def choose_request_id(client: object, supplied: bytes | None, trusted: TrustedProxies) -> str:
    """The proxy's ``X-Request-Id`` when the peer is a trusted proxy and the id is plain
    enough to log; a fresh id otherwise."""
    if supplied is not None and isinstance(client, list | tuple) and client[0] in trusted:
        accepted = acceptable_request_id(supplied)
        if accepted is not None:
            return accepted
    return new_request_id()


class UnsafePath(ValueError):
    """A forwarded path that cannot be normalised safely (control characters, bad escapes)."""


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SEPARATORS = frozenset(b"/\\")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def normalise_path(raw: str) -> str:
    """One canonical spelling of a request path, for every decision made about it.

    Drops the query and fragment, and ``;`` parameters of each segment; decodes
    percent-escapes of unreserved characters and of ``/`` and ``\\`` (others are kept,
    upper-cased); treats ``\\`` as ``/``; removes ``.`` and ``..`` segments (never above the
    root) and empty segments. Control characters, raw or escaped, and malformed escapes raise
    ``UnsafePath``: such a request is refused rather than guessed at.
    """
    path = raw.partition("#")[0].partition("?")[0]
    if _CANONICAL.fullmatch(path):
        return path  # the usual case: nothing below would change it
    return _normalise(path)


# A path already in canonical form: "/" or non-empty segments of plain characters (no "%",
# "\\", ";" or controls), none of them "." or "..", and at most one trailing "/".
_CANONICAL = re.compile(r"/|(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9\-._~!$&'()*+,=:@]+)+/?")


def _normalise(path: str) -> str:
    """``normalise_path`` of a path without query or fragment, the long way."""
    data = path.encode("utf-8", "surrogateescape")
    decoded = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25:  # "%"
            pair = data[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise UnsafePath("malformed percent-escape")
            value = int(pair, 16)
            if value < 0x20 or value == 0x7F:
                raise UnsafePath("escaped control character")
            if value in _UNRESERVED or value in _SEPARATORS:
                decoded.append(value)
            else:
                decoded += b"%" + pair.upper()
            i += 3
            continue
        if byte < 0x20 or byte == 0x7F:
            raise UnsafePath("control character")
        decoded.append(byte)
        i += 1
    text = decoded.decode("utf-8", "surrogateescape").replace("\\", "/")
    segments: list[str] = []
    for segment in text.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = "/" if text.endswith(("/", "/.", "/..")) and segments else ""
    return "/" + "/".join(segments) + trailing


class ForwardedRequest(NamedTuple):
    """The original request, as the proxy told us (or as far as we know it).

    A named tuple rather than a frozen dataclass: just as immutable, and built several
    times faster, which counts on a path taken by every request.
    """

    method: str
    proto: str
    host: str
    uri: str  # path and query as the client sent them
    path: str  # normalised
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
    headers: Sequence[tuple[bytes, bytes]], client: object, trusted: TrustedProxies
) -> ForwardedRequest:
    """The original request from ``X-Forwarded-*`` / ``X-Original-*`` of a trusted proxy.

    Headers from any other peer are ignored. Only these exact names count: look-alikes such
    as ``X_Forwarded_Uri`` or dotted forms are different headers and never read. The first
    value of a repeated header wins. Raises ``UnsafePath`` for a path that must be refused.
    """
    peer = client[0] if isinstance(client, list | tuple) and client else None
    found: dict[str, str] = {}
    nginx = False
    if headers and peer in trusted:
        for name, value in headers:
            field = _FORWARDED_HEADERS.get(name)
            if field is not None and field not in found:
                found[field] = value.decode("latin-1").strip()
                nginx = nginx or name == b"x-original-uri"
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
        path=normalise_path(uri),
        client_ip=_client_ip(found.get("for"), peer, trusted),
        from_proxy=True,
        nginx=nginx,
    )


def _client_ip(forwarded_for: str | None, peer: str | None, trusted: TrustedProxies) -> str | None:
    """The nearest address in ``X-Forwarded-For`` that is not one of our trusted proxies."""
    if not forwarded_for:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer
