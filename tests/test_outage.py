"""Database outages, injected into real processes: a served replica reaches PostgreSQL
through a TCP relay that the test cuts (connections closed, new ones refused) or stalls
(connections open, nothing answers). Validate keeps answering from memory; whatever needs
the database answers 503 in our shape within AUTH_DB_TIMEOUT_SECONDS; everything recovers
without a restart when the database is back."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import PASSWORD, Served, create_user
from .idp import StandInProvider
from .tcp_relay import Relay
from .test_browser import cookie_header, hidden
from .test_replicas import login, validate, wait_until

# A request that needs the database answers within this, with AUTH_DB_TIMEOUT_SECONDS=1
# (a failure may take two bounded steps: a connection, then a query).
BOUND = 3.0


@pytest.fixture
def relay(server_url: str) -> Iterator[Relay]:
    relay = Relay(server_url)
    yield relay
    relay.close()


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    idp = StandInProvider()
    yield idp
    idp.close()


@pytest.fixture
def cut_off(
    database_url: str,
    serve: Callable[..., Served],
    relay: Relay,
    provider: StandInProvider,
    tmp_path: Path,
) -> Served:
    """A replica whose database goes through the relay, trusting an external issuer."""
    config = tmp_path / "issuers.toml"
    config.write_text(
        f'[[issuers]]\nissuer = "{provider.issuer}"\naudience = "api://orders"\n'
        'username_claim = "preferred_username"\n'
    )
    return serve(
        AUTH_DATABASE_URL=relay.url_for(database_url),
        AUTH_DB_TIMEOUT_SECONDS="1",
        AUTH_SYNC_INTERVAL_SECONDS="1",
        AUTH_CONFIG=str(config),
    )


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _needs_the_database(replica: Served, pair: dict[str, str]) -> dict[str, httpx.Response]:
    """Each route that writes to the database, as a client would call it."""
    form = httpx.get(replica.url + "/login")
    assert form.status_code == 200  # the form itself needs no database
    calls: dict[str, Callable[[], httpx.Response]] = {
        "login": lambda: httpx.post(
            replica.url + "/api/v1/auth/login",
            json={"username": "alice", "password": PASSWORD},
            timeout=30,
        ),
        "refresh": lambda: httpx.post(
            replica.url + "/api/v1/auth/refresh",
            json={"refresh_token": pair["refresh_token"]},
            timeout=30,
        ),
        "logout": lambda: httpx.post(
            replica.url + "/api/v1/auth/logout",
            headers={"Authorization": f"Bearer {pair['access_token']}"},
            timeout=30,
        ),
        "form": lambda: httpx.post(
            replica.url + "/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": hidden(form.text, "csrf_token"),
                "rd": "/",
            },
            headers={"Cookie": cookie_header(form), "Accept": "text/html"},
            timeout=30,
        ),
    }
    answers = {}
    for name, call in calls.items():
        response, took = _timed(call)
        assert took < BOUND, f"{name} took {took:.1f} s"
        answers[name] = response
    return answers


def _assert_unavailable(answers: dict[str, httpx.Response]) -> None:
    for name, response in answers.items():
        assert response.status_code == 503, (name, response.text)
        if name == "form":
            assert response.headers["content-type"].startswith("text/html")
            continue
        body = response.json()
        assert body["error"] == "service_unavailable", name
        assert body["request_id"] == response.headers["x-request-id"]


def test_a_cut_database_leaves_validate_answering_and_everything_else_a_prompt_503(
    cut_off: Served,
    relay: Relay,
    alice: None,
    provider: StandInProvider,
    database_url: str,
    serve: Callable[..., Served],
) -> None:
    other = serve(AUTH_DATABASE_URL=database_url)  # a replica that keeps its database
    kept, revoked = login(cut_off), login(cut_off)
    assert httpx.post(
        cut_off.url + "/api/v1/auth/logout",
        headers={"Authorization": f"Bearer {revoked['access_token']}"},
    ).is_success
    assert validate(cut_off, revoked["access_token"]) == 401

    relay.cut()
    unseen = login(other)["access_token"]  # never validated by cut_off: no cache to lean on
    assert validate(cut_off, kept["access_token"]) == 200
    assert validate(cut_off, unseen) == 200
    assert validate(cut_off, provider.token()) == 200
    assert validate(cut_off, revoked["access_token"]) == 401
    assert httpx.get(cut_off.url + "/health/live").status_code == 200
    ready, took = _timed(lambda: httpx.get(cut_off.url + "/health/ready", timeout=30))
    assert ready.status_code == 503 and took < BOUND
    assert ready.json()["checks"]["database"] is False
    _assert_unavailable(_needs_the_database(cut_off, kept))
    # Meanwhile the other replica ends the session that cut_off still honours.
    assert httpx.post(
        other.url + "/api/v1/auth/logout",
        headers={"Authorization": f"Bearer {kept['access_token']}"},
    ).is_success

    relay.restore()
    took = wait_until(lambda: httpx.get(cut_off.url + "/health/ready").status_code == 200, 10)
    assert took < 5
    assert login(cut_off)["access_token"]
    wait_until(lambda: validate(cut_off, kept["access_token"]) == 401, 5)
    assert "Traceback" not in cut_off.log_text()


def test_a_database_that_hangs_is_given_up_on_within_the_bound(
    cut_off: Served, relay: Relay, alice: None
) -> None:
    pair = login(cut_off)
    relay.stall()
    try:
        assert validate(cut_off, pair["access_token"]) == 200
        ready, took = _timed(lambda: httpx.get(cut_off.url + "/health/ready", timeout=30))
        assert ready.status_code == 503 and took < BOUND
        _assert_unavailable(_needs_the_database(cut_off, pair))
        # Again, with every connection of the pool now held by a query that hangs.
        _assert_unavailable(_needs_the_database(cut_off, pair))
    finally:
        relay.resume()
    wait_until(lambda: httpx.get(cut_off.url + "/health/ready").status_code == 200, 10)
    wait_until(
        lambda: (
            httpx.post(
                cut_off.url + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
            ).status_code
            == 200
        ),
        10,
    )
    assert "Traceback" not in cut_off.log_text()


def test_a_vanished_socket_is_a_503_and_the_socket_coming_back_heals_it(
    server_url: str, database_url: str, serve: Callable[..., Served], alice: None
) -> None:
    """PostgreSQL on a Unix socket (the embedded default) removes the socket when it stops:
    connecting fails with FileNotFoundError, once answered as a plain-text 500."""
    folder = Path(tempfile.mkdtemp(prefix="auth-pgsock-"))  # short: a socket path is limited
    relay = Relay(server_url, socket_dir=folder)
    try:
        replica = serve(AUTH_DATABASE_URL=relay.url_for(database_url), AUTH_DB_TIMEOUT_SECONDS="1")
        pair = login(replica)
        relay.cut()
        assert not (folder / ".s.PGSQL.5432").exists()
        assert validate(replica, pair["access_token"]) == 200
        _assert_unavailable(_needs_the_database(replica, pair))
        relay.restore()
        wait_until(lambda: httpx.get(replica.url + "/health/ready").status_code == 200, 10)
        assert login(replica)["access_token"]
    finally:
        relay.close()
        shutil.rmtree(folder, ignore_errors=True)
