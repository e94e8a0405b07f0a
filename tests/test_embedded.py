"""The embedded PostgreSQL of the default set-up under faults (embedded.py): its server
process dying under a running service, and a ``kill -9`` of everything."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from .conftest import PASSWORD, Served, run_cli
from .test_replicas import login, refresh, validate, wait_until


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder of its own (short: the server's socket lives in it)."""
    folder = Path(tempfile.mkdtemp(prefix="auth-embedded-"))
    yield folder
    pid = postmaster_pid(folder)
    if pid is not None and _is_postgres(pid):  # not a pid a test wrote there itself
        os.kill(pid, signal.SIGINT)  # a fast shutdown of whatever a test left running
        psutil.Process(pid).wait(20)
    shutil.rmtree(folder, ignore_errors=True)


def _is_postgres(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).name() == "postgres")
    except psutil.Error:
        return False


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def kill(pid: int, how: signal.Signals = signal.SIGKILL) -> None:
    """Send ``how`` and wait until the process is gone."""
    process = psutil.Process(pid)
    os.kill(pid, how)
    process.wait(20)


def add_alice(data_dir: Path) -> None:
    added = run_cli(
        "user", "add", "alice", "--password-stdin", stdin=PASSWORD, AUTH_DATA_DIR=str(data_dir)
    )
    assert added.returncode == 0, added.stderr


def login_status(replica: Served) -> int:
    response = httpx.post(
        replica.url + "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code in (200, 503), response.text
    if response.status_code == 503:
        assert response.json()["error"] == "service_unavailable"
    return response.status_code


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill -9", "fast stop"])
def test_the_service_starts_its_embedded_server_again_when_it_dies(
    data_dir: Path, serve: Callable[..., Served], how: signal.Signals
) -> None:
    replica = serve(AUTH_DATA_DIR=str(data_dir), AUTH_DB_TIMEOUT_SECONDS="1")
    add_alice(data_dir)
    pair = login(replica)
    first = postmaster_pid(data_dir)
    assert first is not None
    kill(first, how)

    assert validate(replica, pair["access_token"]) == 200  # from memory, meanwhile
    # Every answer meanwhile is a prompt 503 in our shape, until the server is back.
    wait_until(lambda: login_status(replica) == 200, 15)
    assert postmaster_pid(data_dir) not in (None, first)
    assert refresh(replica, pair["refresh_token"]).status_code == 200
    assert "starting it again" in replica.log_text()


def test_after_a_kill_of_everything_the_service_starts_again_with_its_data(
    data_dir: Path, serve: Callable[..., Served]
) -> None:
    replica = serve(AUTH_DATA_DIR=str(data_dir))
    add_alice(data_dir)
    pair = login(replica)
    server = postmaster_pid(data_dir)
    assert server is not None
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    kill(replica.process.pid)
    kill(server)
    # The server's process id now belongs to another program (here: this test).
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")

    again = serve(AUTH_DATA_DIR=str(data_dir))
    assert validate(again, pair["access_token"]) == 200  # the signing keys were kept
    assert refresh(again, pair["refresh_token"]).status_code == 200  # and the session
    assert login(again)["access_token"]  # and the user

    # The dead service is forgotten: the last live one stops the server when it ends.
    restarted = postmaster_pid(data_dir)
    assert restarted is not None and restarted != server
    again.stop()
    deadline = time.monotonic() + 20
    while psutil.pid_exists(restarted) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(restarted)
