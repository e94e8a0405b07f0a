"""Which peers are trusted proxies, whose forwarded headers (and request ids) we believe."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

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
