"""Where a fetch of a URL that a stranger chose may connect: public addresses only.

The Client ID Metadata Document fetcher (``cimd.py``) takes URLs from anyone who can reach
/authorize; without this fence they could make us request the cloud metadata service
(169.254.169.254), the database port, or an admin page on the private network. Every address
the name resolves to must be public (one private answer among public ones is how DNS
rebinding starts); IPv4 hidden in IPv6 (mapped, 6to4, Teredo, NAT64) is judged as the IPv4
address it reaches. The caller connects to the address returned, not to the name again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from .errors import InvalidClientDocument

__all__ = ["is_public", "public_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 addresses that carry an IPv4 address a router would reach: NAT64 (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared,
    reserved, documentation, unspecified or multicast)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


async def public_address(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for ``host``: IPv4 first, every answer checked; with
    ``allow_private`` (development) any address will do."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise InvalidClientDocument(f"client_id host {host} does not resolve: {e}") from None
        # A scoped IPv6 answer ("fe80::1%eth0") is link-local, whatever its scope.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise InvalidClientDocument(f"client_id host {host} does not resolve")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise InvalidClientDocument(
                    f"client_id host {host} has the non-public address {address}"
                )
    return str(min(addresses, key=lambda a: a.version))
