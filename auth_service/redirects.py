"""Where a browser may be sent after login or logout: never to a host we do not vouch for.

``rd`` is honoured only when it is a path on our own host, or an absolute http(s) URL whose
host is in the allow-list (an exact host, or ``.example.com`` for that domain and all of its
subdomains). Everything else falls back to a safe default. The checks are strict on purpose:
backslashes, whitespace and control characters (raw or percent-encoded), user-info, and
scheme-relative ``//host`` forms are refused outright rather than interpreted, because
browsers and servers disagree on how to read them (the family of open-redirect CVEs in
oauth2-proxy and Pomerium).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_REDIRECT_LENGTH = 2048

# Printable ASCII only; no backslash, no whitespace.
_PLAIN = re.compile(r"[\x21-\x7e]+")
# Percent-encoded whitespace and control characters: refused anywhere.
_ENCODED_SPACE = re.compile(r"%(?:[01][0-9a-fA-F]|7[fF]|20)")
# Encoded separators ("/", "\", "@", "#", "?"): refused where they could change the host.
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC]|40|23|3[fF])")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """True when ``host`` equals an allowed host, or falls under an allowed ``.domain``."""
    for entry in allowed:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def safe_redirect(
    rd: str | None, *, public_url: str, allowed_domains: Iterable[str], default: str
) -> str:
    """``rd`` as an absolute URL if it is safe to send a browser there, else ``default``."""
    if not rd or len(rd) > MAX_REDIRECT_LENGTH or not _PLAIN.fullmatch(rd) or "\\" in rd:
        return default
    if _ENCODED_SPACE.search(rd):
        return default
    if rd.startswith("/"):
        # A path on our own host. "//x" and "/\x" would be read as another host.
        if rd.startswith("//"):
            return default
        if _ENCODED_SEPARATOR.match(rd, 1):
            return default  # "/%2F..." or "/%5C..." could turn into "//" downstream
        return public_url.rstrip("/") + rd
    try:
        parts = urlsplit(rd)
        if parts.port == 0:
            return default
    except ValueError:  # a malformed port
        return default
    if parts.scheme not in ("http", "https") or not rd.lower().startswith(parts.scheme + "://"):
        return default
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc:
        return default
    host = (parts.hostname or "").rstrip(".")
    if not _HOST.fullmatch(host):
        return default
    own_host = (urlsplit(public_url).hostname or "").lower()
    if host != own_host and not host_allowed(host, allowed_domains):
        return default
    return rd
