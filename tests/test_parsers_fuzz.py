"""Property tests of the request parsers: any bytes give an answer or a clean refusal."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from auth_service.errors import CredentialError
from auth_service.forwarded import (
    FORWARDED_HEADER_NAMES,
    TrustedProxies,
    UnsafePath,
    read_forwarded,
)
from auth_service.validation import extract_bearer_token, extract_cookie_token, prefers_html

TRUSTED = TrustedProxies([ipaddress.ip_network("127.0.0.0/8")])
NAMES = sorted(FORWARDED_HEADER_NAMES)


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=300), max_size=3))
def test_authorization_values_give_a_token_or_a_credential_error(values: list[bytes]) -> None:
    try:
        token = extract_bearer_token(values, 256)
    except CredentialError:
        return
    assert len(values) == 1 and 0 < len(token) <= 256
    assert token.isascii() and " " not in token


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=300), max_size=3))
def test_cookie_headers_give_a_token_none_or_a_credential_error(values: list[bytes]) -> None:
    try:
        token = extract_cookie_token(values, b"auth_session", 256)
    except CredentialError:
        return
    assert token is None or (token.isascii() and len(token) <= 256)


@settings(max_examples=500)
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.binary(max_size=200)), max_size=8))
def test_forwarded_headers_give_a_request_or_unsafe_path(
    headers: list[tuple[bytes, bytes]],
) -> None:
    try:
        request = read_forwarded(headers, ("127.0.0.1", 1), TRUSTED)
    except UnsafePath:
        return
    assert request.path.startswith("/")
    assert all(c.isprintable() for c in request.path + request.host + request.uri)
    assert request.proto in ("http", "https")


@given(st.binary(max_size=300))
def test_accept_headers_never_raise(value: bytes) -> None:
    assert prefers_html(value) in (True, False)
