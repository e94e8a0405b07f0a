"""Two ``auth-service serve`` processes on one database: sessions hold across replicas."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from .conftest import PASSWORD, Served, create_user, run_cli
from .tcp_relay import Relay

VALIDATE = "/api/v1/auth/validate"


def login(replica: Served) -> dict[str, Any]:
    response = httpx.post(
        replica.url + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def validate(replica: Served, token: str) -> int:
    response = httpx.get(replica.url + VALIDATE, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def refresh(replica: Served, token: str) -> httpx.Response:
    return httpx.post(replica.url + "/api/v1/auth/refresh", json={"refresh_token": token})


def wait_until(check: Callable[[], bool], seconds: float) -> float:
    """Poll ``check`` until true; returns how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def replicas(database_url: str, serve: Callable[..., Served]) -> tuple[Served, Served]:
    return serve(AUTH_DATABASE_URL=database_url), serve(AUTH_DATABASE_URL=database_url)


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


def test_a_refresh_on_one_replica_is_honoured_by_the_other(
    replicas: tuple[Served, Served], alice: None
) -> None:
    a, b = replicas
    pair = login(a)
    renewed = refresh(b, pair["refresh_token"])
    assert renewed.status_code == 200
    assert validate(a, renewed.json()["access_token"]) == 200
    assert refresh(a, renewed.json()["refresh_token"]).status_code == 200


def test_reuse_revokes_the_family_on_both_replicas(
    replicas: tuple[Served, Served], alice: None
) -> None:
    a, b = replicas
    pair = login(a)
    assert validate(b, pair["access_token"]) == 200
    renewed = refresh(a, pair["refresh_token"]).json()
    reuse = refresh(b, pair["refresh_token"])  # the retired token, on the other replica
    assert reuse.status_code == 401
    assert refresh(a, renewed["refresh_token"]).status_code == 401
    for replica in (a, b):
        wait_until(lambda r=replica: validate(r, renewed["access_token"]) == 401, 2)
        assert validate(replica, pair["access_token"]) == 401


def test_logout_on_one_replica_takes_effect_on_the_other_within_two_seconds(
    replicas: tuple[Served, Served], alice: None
) -> None:
    a, b = replicas
    pair = login(a)
    assert validate(b, pair["access_token"]) == 200  # verified and cached on b
    logout = httpx.post(
        a.url + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert logout.status_code == 200
    took = wait_until(lambda: validate(b, pair["access_token"]) == 401, 2)
    assert took < 2


def test_key_rotation_reaches_the_other_replica_and_old_tokens_keep_working(
    replicas: tuple[Served, Served], alice: None, database_url: str
) -> None:
    a, b = replicas
    old = login(a)
    old_kid = jwt.get_unverified_header(old["access_token"])["kid"]
    rotated = run_cli("keys", "rotate", AUTH_DATABASE_URL=database_url)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split()[3].rstrip(";")
    assert new_kid != old_kid
    wait_until(lambda: jwt.get_unverified_header(login(b)["access_token"])["kid"] == new_kid, 10)
    for replica in (a, b):
        assert validate(replica, old["access_token"]) == 200
        kids = {k["kid"] for k in httpx.get(replica.url + "/.well-known/jwks.json").json()["keys"]}
        assert kids == {old_kid, new_kid}
    listed = run_cli("keys", "list", AUTH_DATABASE_URL=database_url)
    states = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert states == {old_kid: "verifying", new_kid: "signing"}


@pytest.fixture
def relay(server_url: str) -> Iterator[Relay]:
    relay = Relay(server_url)
    yield relay
    relay.close()


def test_a_replica_cut_off_from_the_database_catches_up(
    database_url: str, serve: Callable[..., Served], relay: Relay, alice: None
) -> None:
    a = serve(AUTH_DATABASE_URL=database_url)
    b = serve(AUTH_DATABASE_URL=relay.url_for(database_url), AUTH_SYNC_INTERVAL_SECONDS="1")
    pair = login(a)
    assert validate(b, pair["access_token"]) == 200

    relay.cut()
    logout = httpx.post(
        a.url + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert logout.status_code == 200
    time.sleep(1.5)
    # Cut off, b cannot know yet; it keeps answering from memory meanwhile.
    assert validate(b, pair["access_token"]) == 200

    relay.restore()
    wait_until(lambda: validate(b, pair["access_token"]) == 401, 20)
    # The revocations are in memory before the key set is read again, and the line comes after
    # both: a validate can see the first before the line is written.
    wait_until(lambda: "caught up" in b.log_text(), 5)
