"""Two replicas behind a real Traefik, on the shipped configuration (its health checks and
retries), restarted one after the other under steady validate load: every validate of a
valid token answers 200 throughout."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import Served, cli_env, create_user, free_port, start_served, stop_proxy
from ..test_replicas import login, wait_until
from .conftest import DEMO_DOMAIN, _start_traefik


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[list[Served]]:
    env = cli_env(
        AUTH_DATABASE_URL=database_url,
        AUTH_TRUSTED_PROXIES="127.0.0.1/32",
        AUTH_SHUTDOWN_DELAY_SECONDS="2",  # Traefik checks health every second
    )
    started = [start_served(tmp_path, env), start_served(tmp_path, env)]
    yield started
    for served in started:
        served.stop()


def _load(url: str, headers: dict[str, str], stop: threading.Event, seen: Counter[str]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                seen[str(client.get(url, headers=headers).status_code)] += 1
            except httpx.TransportError as e:
                seen[type(e).__name__] += 1


def test_restarting_the_replicas_one_after_the_other_refuses_no_valid_token(
    tmp_path: Path, replicas: list[Served], echo_port: int, alice: None
) -> None:
    port = free_port()
    ports = [r.port for r in replicas]
    proxy = _start_traefik(tmp_path, port, ports[0], echo_port, auth_ports=ports)
    try:
        url = f"http://127.0.0.1:{port}/orders"
        headers = {
            "Host": f"app.{DEMO_DOMAIN}:{port}",
            "Authorization": f"Bearer {login(replicas[0])['access_token']}",
        }
        wait_until(lambda: httpx.get(url, headers=headers).status_code == 200, 20)
        stop, seen = threading.Event(), Counter[str]()
        load = [threading.Thread(target=_load, args=(url, headers, stop, seen)) for _ in range(4)]
        for thread in load:
            thread.start()
        try:
            for i, replica in enumerate(list(replicas)):
                replica.process.send_signal(signal.SIGTERM)
                replica.process.wait(30)
                replicas[i] = start_served(tmp_path, replica.env, port=replica.port)
                time.sleep(3)  # Traefik's health check sees it back before the next goes
        finally:
            stop.set()
            for thread in load:
                thread.join()
    finally:
        stop_proxy(proxy)
    assert set(seen) == {"200"}, seen
    assert seen["200"] > 200
