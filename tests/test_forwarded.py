"""Forwarded headers: trusted only from proxies, exact names only, a canonical path or none."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.forwarded import (
    ForwardedUriTooLong,
    TrustedProxies,
    UnsafePath,
    canonical_path,
    client_address,
    read_forwarded,
)
from auth_service.settings import DEFAULT_TRUSTED_PROXIES

from .spellings import NOT_CANONICAL

TRUSTED = TrustedProxies(ipaddress.ip_network(n) for n in DEFAULT_TRUSTED_PROXIES)
PROXY = ("10.0.0.2", 40000)
STRANGER = ("203.0.113.7", 40000)


@pytest.mark.parametrize("spelling", NOT_CANONICAL)
def test_paths_that_are_not_canonical_are_refused(spelling: str) -> None:
    with pytest.raises(UnsafePath, match="not canonical"):
        canonical_path(spelling)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b/", "/a/b/"),
        ("/admin/users?next=/../public", "/admin/users"),  # the query is not the path
        ("/...", "/..."),
        ("/a..b/.c/d.", "/a..b/.c/d."),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/caf\u00e9"),
        ("/caf%c3%a9", "/caf\u00e9"),
        ("/users/alice%40example.com", "/users/alice@example.com"),
        ("/users/alice@example.com", "/users/alice@example.com"),
        ("/a%2Bb/%3A%21", "/a+b/:!"),
        ("/%E2%82%AC%20100", "/\u20ac 100"),
    ],
)
def test_canonical_paths_are_decoded_once(raw: str, expected: str) -> None:
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["/a%00b", "/a%0d%0aSet-Cookie:x", "/a%", "/a%zz", "/a%7F", "/a%ff", "/a%c3", "/a%C2%85"],
)
def test_unsafe_escapes_are_refused(raw: str) -> None:
    with pytest.raises(UnsafePath):
        canonical_path(raw)


@given(st.text(alphabet="/.%2eEfF5cC3bB;#?ab\\", max_size=40))
def test_an_accepted_path_is_what_an_upstream_would_make_of_it(raw: str) -> None:
    """Whatever is accepted, an upstream that decodes escapes once and removes dot segments
    (RFC 3986 5.2.4) finds nothing to change: the rules saw its path."""
    try:
        decided = canonical_path("/" + raw)
    except UnsafePath:
        return
    path = ("/" + raw).partition("?")[0]
    assert decided == unquote(path)
    segments = decided.split("/")
    assert segments[0] == "" and "" not in segments[1:-1]
    assert "." not in segments and ".." not in segments
    assert not set(decided) & set("\\;%#?")


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in values.items()]


def test_traefik_headers_from_a_trusted_proxy() -> None:
    request = read_forwarded(
        [
            (b"x-forwarded-method", b"POST"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"App.Example.com"),
            (b"x-forwarded-uri", b"/orders/caf%C3%A9?x=/../1"),
            (b"x-forwarded-for", b"198.51.100.4, 10.0.0.9"),
        ],
        PROXY,
        TRUSTED,
    )
    assert (request.method, request.proto, request.host) == ("POST", "https", "app.example.com")
    assert request.uri == "/orders/caf%C3%A9?x=/../1" and request.path == "/orders/caf\u00e9"
    assert request.client_ip == "198.51.100.4"
    assert request.url == "https://app.example.com/orders/caf%C3%A9?x=/../1"
    assert not request.nginx


def test_nginx_headers_from_a_trusted_proxy() -> None:
    request = read_forwarded(
        [
            (b"x-original-uri", b"/a/b"),
            (b"x-original-method", b"DELETE"),
            (b"x-forwarded-host", b"app.example.com"),
        ],
        PROXY,
        TRUSTED,
    )
    assert (request.method, request.path, request.nginx) == ("DELETE", "/a/b", True)


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    request = read_forwarded(
        [(b"x-forwarded-uri", b"/admin"), (b"x-forwarded-host", b"evil.example")],
        STRANGER,
        TRUSTED,
    )
    assert request.path == "/" and request.host == "" and request.url is None
    assert request.client_ip == "203.0.113.7"
    assert not request.from_proxy


@pytest.mark.parametrize(
    "name", [b"x_forwarded_uri", b"x.forwarded.uri", b"x-forwarded-uri2", b"forwarded-uri"]
)
def test_look_alike_header_names_are_not_read(name: bytes) -> None:
    request = read_forwarded([(name, b"/admin")], PROXY, TRUSTED)
    assert request.path == "/"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-forwarded-uri", b"/a\r\nx")],
        [(b"x-forwarded-uri", b"http://evil/")],
        [(b"x-forwarded-host", b"evil.com/path")],
        [(b"x-forwarded-host", b"evil com")],
    ],
)
def test_malformed_forwarded_values_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(UnsafePath):
        read_forwarded(headers, PROXY, TRUSTED)


def test_a_forwarded_uri_over_the_cap_is_refused_before_it_is_read() -> None:
    # Over the cap, even a URI that would be refused for its characters is refused for its
    # length: nothing walks it.
    headers = [(b"x-forwarded-uri", b"/\x00" + b"a" * 9000)]
    with pytest.raises(ForwardedUriTooLong) as refused:
        read_forwarded(headers, PROXY, TRUSTED, max_uri_length=8192)
    assert refused.value.status == 414
    at_the_cap = [(b"x-forwarded-uri", b"/" + b"a" * 8191)]
    assert read_forwarded(at_the_cap, PROXY, TRUSTED, max_uri_length=8192).path == "/" + "a" * 8191


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # From a trusted proxy: the nearest hop that is not one of our proxies.
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # forged hops are left
        ("10.0.0.2", "198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # a proxy chain
        ("10.0.0.2", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # every hop ours: the first
        ("10.0.0.2", "", "10.0.0.2"),
        # A hop that is not an address stops the walk at the proxy that wrote it.
        ("10.0.0.2", "203.0.113.9, unknown", "10.0.0.2"),
        ("10.0.0.2", "203.0.113.9, not-an-ip, 10.0.0.7", "10.0.0.7"),
        ("10.0.0.2", "203.0.113.9,", "10.0.0.2"),
        # Spellings some proxies use, read as the one address they name.
        ("10.0.0.2", "203.0.113.9:5123", "203.0.113.9"),
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "2001:DB8:0::1", "2001:db8::1"),
        ("10.0.0.2", "::ffff:203.0.113.9", "203.0.113.9"),
        (
            "10.0.0.2",
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        # Nothing longer than an address can be: not parsed, not remembered.
        pytest.param(
            "10.0.0.2",
            "203.0.113.9, " + "1" * 100_000 + ", 10.0.0.7",
            "10.0.0.7",
            id="a-hop-longer-than-any-address",
        ),
        # From anyone else: the peer, whatever it claims.
        ("203.0.113.7", "10.0.0.8", "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        (None, "198.51.100.1", None),
    ],
)
def test_the_client_address_is_the_nearest_hop_we_do_not_trust(
    peer: str | None, forwarded_for: str, expected: str | None
) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_repeated_forwarded_for_lines_are_one_list() -> None:
    """HAProxy adds an X-Forwarded-For line rather than extending the client's: the last
    line is the proxy's, and a forged first line must not win."""
    request = read_forwarded(
        [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")],
        PROXY,
        TRUSTED,
    )
    assert request.client_ip == "203.0.113.9"


def test_strings_longer_than_an_address_are_neither_parsed_nor_remembered() -> None:
    """A trusted hop's neighbour can be anything its client wrote: a flood of long hops
    must not fill the memo (4096 entries of up to 64 KiB each through Traefik)."""
    trusted = TrustedProxies(TRUSTED.networks)
    for i in range(100):
        forged = f"{i}" + "1" * 10_000
        assert client_address("10.0.0.2", f"{forged}, 10.0.0.7", trusted) == "10.0.0.7"
    assert len(trusted._memo) == 2  # the two proxies: the memo holds short strings only
    assert all(len(key) <= 64 for key in trusted._memo)
