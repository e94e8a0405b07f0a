"""The audit trail: every kind of event is written with its context, and `audit` lists them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import PASSWORD, Served, run_cli


def cli(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, stdin=stdin, AUTH_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    return result


def test_each_event_kind_is_audited_and_listed(
    database_url: str, serve: Callable[..., Served]
) -> None:
    cli(database_url, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    served = serve(AUTH_DATABASE_URL=database_url)
    with httpx.Client(base_url=served.url) as http:
        bad = http.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
        good = http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        first = good.json()
        second = http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        http.post("/api/v1/auth/refresh", json={"refresh_token": "never-issued"})
        reuse = http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        third = http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        logout = http.post(
            "/api/v1/auth/logout",
            headers={"Authorization": f"Bearer {third.json()['access_token']}"},
        )
        assert logout.status_code == 200 and second.status_code == 200
    cli(database_url, "user", "passwd", "alice", "--password-stdin", stdin="another passphrase\n")
    cli(database_url, "user", "disable", "alice")
    cli(database_url, "keys", "rotate")

    rows: list[dict[str, Any]] = json.loads(cli(database_url, "audit", "--json").stdout)
    kinds = {(r["event"], r["outcome"]) for r in rows}
    assert kinds >= {
        ("user_add", "success"),
        ("login", "failure"),
        ("login", "success"),
        ("refresh", "success"),
        ("refresh", "failure"),
        ("revocation", "success"),
        ("logout", "success"),
        ("user_passwd", "success"),
        ("user_disable", "success"),
        ("keys_rotate", "success"),
    }
    failed_login = next(r for r in rows if r["event"] == "login" and r["outcome"] == "failure")
    assert failed_login["request_id"] == bad.headers["x-request-id"]
    assert failed_login["client_addr"] == "127.0.0.1"
    assert failed_login["username"] == "alice"
    assert PASSWORD not in json.dumps(rows) and "nope" not in json.dumps(rows)
    reasons = [r["detail"].get("reason") for r in rows if r["event"] == "revocation"]
    assert any("reuse" in (reason or "") for reason in reasons)
    assert "user disabled" in reasons and "password changed" in reasons

    table = cli(database_url, "audit", "--user", "alice", "--since", "1h").stdout.splitlines()
    assert table[0].split()[:3] == ["TIME", "EVENT", "OUTCOME"]
    assert len(table) > 5 and all(" alice " in line for line in table[1:])
    assert cli(database_url, "audit", "--user", "nobody").stdout.count("\n") == 1
    assert cli(database_url, "audit", "--since", "2999-01-01").stdout.count("\n") == 1


def test_since_must_be_a_duration_or_a_date(database_url: str) -> None:
    result = run_cli("audit", "--since", "yesterday", AUTH_DATABASE_URL=database_url)
    assert result.returncode == 1 and "--since" in result.stderr
    assert "Traceback" not in result.stderr


def test_summary_lines_show_the_401_rate_at_info(
    database_url: str, serve: Callable[..., Served]
) -> None:
    served = serve(
        AUTH_DATABASE_URL=database_url, AUTH_SUMMARY_INTERVAL_SECONDS="1", AUTH_LOG_LEVEL="INFO"
    )
    for _ in range(3):
        httpx.get(served.url + "/api/v1/auth/validate")
    deadline = time.monotonic() + 5
    summaries: list[dict[str, Any]] = []
    while not summaries and time.monotonic() < deadline:
        time.sleep(0.2)
        summaries = [
            json.loads(line)
            for line in served.log_text().splitlines()
            if '"validate summary"' in line
        ]
    assert summaries, served.log_text()
    line = summaries[0]
    assert line["level"] == "INFO"
    assert (line["unauthorized"], line["allowed"], line["total"]) == (3, 0, 3)
    assert line["unauthorized_ratio"] == 1.0


def test_state_gauges_and_build_info_are_exported(
    database_url: str, serve: Callable[..., Served]
) -> None:
    served = serve(AUTH_DATABASE_URL=database_url)
    text = httpx.get(served.url + "/metrics").text
    for name in (
        "auth_db_pool_connections",
        "auth_revoked_sessions",
        "auth_token_cache_entries",
        "auth_signing_keys 1.0",
        'auth_build_info{version="',
    ):
        assert name in text
