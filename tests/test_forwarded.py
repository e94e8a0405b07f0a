"""Forwarded headers: trusted only from proxies, exact names only, one canonical path."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.forwarded import TrustedProxies, UnsafePath, normalise_path, read_forwarded
from auth_service.settings import DEFAULT_TRUSTED_PROXIES

TRUSTED = TrustedProxies(ipaddress.ip_network(n) for n in DEFAULT_TRUSTED_PROXIES)
PROXY = ("10.0.0.2", 40000)
STRANGER = ("203.0.113.7", 40000)


@pytest.mark.parametrize(
    "spelling",
    [
        "/admin/users",
        "/admin//users",
        "//admin/users",
        "/admin/./users",
        "/admin/x/../users",
        "/public/../admin/users",
        "/%61dmin/users",
        "/%2e%2e/admin/users",
        "/admin%2Fusers",
        "/admin%2fusers",
        "/admin\\users",
        "/admin%5Cusers",
        "/admin;jsessionid=abc/users",
        "/admin/users;x=1",
        "/admin/users?next=/public",
        "/admin/users#fragment",
        "/./admin/./users",
        "/../../admin/users",
        "/admin/%2E/users",
        "/admin/%2e%2E/admin/users",
    ],
)
def test_every_spelling_of_a_path_normalises_the_same(spelling: str) -> None:
    assert normalise_path(spelling) == "/admin/users"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b/", "/a/b/"),
        ("/%7Euser", "/~user"),
        ("/caf%c3%a9", "/caf%C3%A9"),  # not unreserved: kept encoded, upper-cased
        ("/%252e%252e/admin", "/%252e%252e/admin"),  # decoded once only
        ("/a%20b", "/a%20b"),
    ],
)
def test_normalisation_keeps_what_is_meaningful(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(
    "raw", ["/a%00b", "/a%0d%0aSet-Cookie:x", "/a%", "/a%zz", "/a\x01", "/a%7F"]
)
def test_unsafe_paths_are_refused(raw: str) -> None:
    with pytest.raises(UnsafePath):
        normalise_path(raw)


@given(st.text(alphabet="/.%2eEfF5cC;#?ab\\", max_size=40))
def test_normalisation_is_idempotent_and_rooted(raw: str) -> None:
    try:
        once = normalise_path(raw)
    except UnsafePath:
        return
    assert once.startswith("/")
    assert "//" not in once and "/./" not in once and "/../" not in once
    assert normalise_path(once) == once


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in values.items()]


def test_traefik_headers_from_a_trusted_proxy() -> None:
    request = read_forwarded(
        [
            (b"x-forwarded-method", b"POST"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"App.Example.com"),
            (b"x-forwarded-uri", b"/orders/../admin?x=1"),
            (b"x-forwarded-for", b"198.51.100.4, 10.0.0.9"),
        ],
        PROXY,
        TRUSTED,
    )
    assert (request.method, request.proto, request.host) == ("POST", "https", "app.example.com")
    assert request.uri == "/orders/../admin?x=1" and request.path == "/admin"
    assert request.client_ip == "198.51.100.4"
    assert request.url == "https://app.example.com/orders/../admin?x=1"
    assert not request.nginx


def test_nginx_headers_from_a_trusted_proxy() -> None:
    request = read_forwarded(
        [
            (b"x-original-uri", b"/a//b"),
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
