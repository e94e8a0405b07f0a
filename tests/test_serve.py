"""The README's way: ``auth-service serve`` on its embedded PostgreSQL, across restarts."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path
from typing import Any

import httpx

from .conftest import PASSWORD, run_cli


def test_embedded_database_serves_and_survives_a_restart(tmp_path: Path, serve: Any) -> None:
    data = str(tmp_path / "data")
    # No key-encryption key configured: the embedded database's own, made on first start.
    served = serve(AUTH_DATA_DIR=data, AUTH_LOG_FORMAT="json", AUTH_KEY_ENCRYPTION_KEY="")
    kek = Path(data) / "key-encryption-key"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    kek_text = kek.read_text()
    hints = [line for line in served.log_text().splitlines() if "auth-service user add" in line]
    assert len(hints) == 1, served.log_text()

    # A second process with the same data folder shares the running server.
    added = run_cli(
        "user",
        "add",
        "alice",
        "--password-stdin",
        "--group",
        "ops",
        stdin=PASSWORD + "\n",
        AUTH_DATA_DIR=data,
        AUTH_KEY_ENCRYPTION_KEY="",
    )
    assert added.returncode == 0, added.stderr

    login = httpx.post(
        served.url + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200
    token = login.json()["access_token"]
    jwks = httpx.get(served.url + "/.well-known/jwks.json").json()
    served.stop()
    # uvicorn shuts down gracefully, then re-raises SIGTERM; the embedded server stops with it.
    assert served.process.returncode in (0, -signal.SIGTERM)
    assert not (Path(data) / "pgdata" / "postmaster.pid").exists()

    again = serve(AUTH_DATA_DIR=data, AUTH_LOG_FORMAT="json", AUTH_KEY_ENCRYPTION_KEY="")
    assert kek.read_text() == kek_text  # the same key, which opens the sealed signing key
    assert "auth-service user add" not in again.log_text()  # users exist now
    assert httpx.get(again.url + "/.well-known/jwks.json").json() == jwks
    response = httpx.get(
        again.url + "/api/v1/auth/validate", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.headers["x-auth-user"] == "alice"
    assert response.headers["x-auth-groups"] == "ops"
    assert all(isinstance(json.loads(line), dict) for line in again.log_text().splitlines())


def test_an_unreachable_database_stops_serve_with_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--port",
        "0",
        AUTH_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        AUTH_LOG_FORMAT="text",
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "cannot start: cannot connect to PostgreSQL" in output
    assert "Traceback" not in output
