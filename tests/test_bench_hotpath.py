"""The shortcuts the validate hot path takes (see bench/RESULTS.md) give the same answers as
the long way round."""

from __future__ import annotations

import ipaddress
import re
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service import forwarded
from auth_service.cache import TokenCache
from auth_service.errors import MalformedCredential, TokenTooLong
from auth_service.forwarded import (
    TrustedProxies,
    UnsafePath,
    canonical_path,
    new_request_id,
    read_forwarded,
)
from auth_service.settings import DEFAULT_TRUSTED_PROXIES
from auth_service.types import Identity
from auth_service.validation import extract_bearer_token

TRUSTED = TrustedProxies(ipaddress.ip_network(n) for n in DEFAULT_TRUSTED_PROXIES)

_PATH_CHARACTERS = st.sampled_from(
    [*"/abAZ09-._~!$&'()*+,=:@;%\\?#2eEfF5cC ", "%2e", "%2F", "%20", "%C3%A9", "//", "/../"]
)


def _long_way(raw: str) -> str:
    return forwarded._canonical_long_way(raw.partition("?")[0])


@given(st.lists(_PATH_CHARACTERS, max_size=30).map(lambda parts: "/" + "".join(parts)))
def test_the_plain_path_shortcut_agrees_with_the_full_check(raw: str) -> None:
    try:
        expected = _long_way(raw)
    except UnsafePath:
        with pytest.raises(UnsafePath):
            canonical_path(raw)
        return
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    "path", ["/", "/a", "/a/", "/a/b.c/d", "/...", "/a..b/", "/~user/x:y@z", "/a/b?c=/../d"]
)
def test_plain_paths_take_the_shortcut(path: str) -> None:
    assert forwarded._PLAIN.fullmatch(path.partition("?")[0])
    assert canonical_path(path) == _long_way(path)


@pytest.mark.parametrize("path", ["//", "/a//b", "/./a", "/a/..", "/a/.", "/a;b", "/%41", "/a\\b"])
def test_paths_to_check_do_not_take_the_shortcut(path: str) -> None:
    assert not forwarded._PLAIN.fullmatch(path)


@pytest.mark.parametrize("uri", ["/a b", "/a\tb", "/caf\u00e9", "/a\x7f"])
def test_forwarded_uris_outside_printable_ascii_are_refused(uri: str) -> None:
    headers = [(b"x-forwarded-uri", uri.encode("latin-1"))]
    with pytest.raises(UnsafePath):
        read_forwarded(headers, ("10.0.0.2", 1), TRUSTED)


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("203.0.113.7", 1), None])
def test_a_request_without_forwarded_headers_is_the_peer_asking_for_root(client: object) -> None:
    request = read_forwarded([], client, TRUSTED)
    peer = client[0] if isinstance(client, tuple) else None
    assert request == ("GET", "http", "", "/", "/", peer, False, False)
    assert request.url is None


def test_request_ids_are_64_random_bits_in_hex_and_unique() -> None:
    ids = [new_request_id() for _ in range(5000)]  # several batches of random bytes
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def _identity(user_id: str, name: str = "alice", groups: tuple[str, ...] = ("dev",)) -> Identity:
    return Identity(user_id, name, groups, (), uuid.uuid4().hex, time.time() + 300, "sid")


def test_the_cache_answers_only_for_the_exact_token() -> None:
    cache = TokenCache(10)
    cache.put("aaa.bbb.ccc", _identity("u1"))
    assert cache.get("aaa.bbb.ccc") is not None
    assert cache.get("aaa.bbb.ccd") is None
    assert cache.get("aaa.bbb.cc") is None


def test_a_users_tokens_share_one_copy_of_the_user() -> None:
    cache = TokenCache(10)
    first = cache.put("t1", _identity(str(uuid.UUID(int=1))))
    second = cache.put("t2", _identity(str(uuid.UUID(int=1))))
    assert second.user is first.user
    renamed = cache.put("t3", _identity(str(uuid.UUID(int=1)), name="alice2"))
    assert renamed.user is not first.user
    assert dict(renamed.user.headers())[b"x-auth-user"] == b"alice2"
    assert dict(first.user.headers())[b"x-auth-user"] == b"alice"  # what its token said


def test_the_bound_holds_under_a_flood_and_the_oldest_go_first() -> None:
    cache = TokenCache(100)
    for n in range(1000):
        cache.put(f"token-{n}", _identity(f"user-{n}"))
        assert len(cache) <= 100
    assert cache.get("token-899") is None
    assert all(cache.get(f"token-{n}") is not None for n in range(900, 1000))


def test_the_length_cap_comes_before_the_cache_and_the_character_check() -> None:
    with pytest.raises(TokenTooLong):
        extract_bearer_token([b"Bearer " + b"\x00" * 20], 10)
    with pytest.raises(MalformedCredential):
        extract_bearer_token([b"Bearer a\x00b"], 10)
    assert extract_bearer_token([b"bearer   abc.def-_~+/=="], 100) == "abc.def-_~+/=="
