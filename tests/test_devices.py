"""Device cookies: ours, recent, for exactly one account, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.devices import DEVICE_MAX_AGE_SECONDS, device_id, issue_device_token

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def test_a_fresh_cookie_names_its_account_and_a_new_id_each_time() -> None:
    first = issue_device_token(SECRET, "alice", now=NOW)
    second = issue_device_token(SECRET, "alice", now=NOW)
    ids = {device_id(SECRET, token, "alice", now=NOW) for token in (first, second)}
    assert None not in ids and len(ids) == 2


@pytest.mark.parametrize(
    ("case", "username", "secret", "now"),
    [
        ("another account", "bob", SECRET, NOW),
        ("another case of the name", "Alice", SECRET, NOW),
        ("another service's key", "alice", b"x" * 32, NOW),
        ("too old", "alice", SECRET, NOW + DEVICE_MAX_AGE_SECONDS + 1),
        ("from the future", "alice", SECRET, NOW - 120),
    ],
)
def test_a_cookie_counts_only_for_its_account_its_service_and_its_time(
    case: str, username: str, secret: bytes, now: float
) -> None:
    token = issue_device_token(SECRET, "alice", now=NOW)
    assert device_id(secret, token, username, now=now) is None, case


def test_a_cookie_still_counts_on_its_last_day() -> None:
    token = issue_device_token(SECRET, "alice", now=NOW)
    assert device_id(SECRET, token, "alice", now=NOW + DEVICE_MAX_AGE_SECONDS) is not None


@given(st.integers(min_value=0), st.characters(codec="ascii"))
def test_any_edited_character_is_refused(position: int, replacement: str) -> None:
    token = issue_device_token(SECRET, "alice", now=NOW)
    index = position % len(token)
    edited = token[:index] + replacement + token[index + 1 :]
    if edited != token:
        assert device_id(SECRET, edited, "alice", now=NOW) is None


@given(st.text(max_size=600))
def test_garbage_is_refused_quietly(value: str) -> None:
    assert device_id(SECRET, value, "alice", now=NOW) is None
