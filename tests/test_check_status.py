"""``auth-service check-status``: live, ready, database, keys and metrics of a running service."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from auth_service.status import COMPONENTS, Answer, StatusError, assess, default_url, table

from .conftest import Served, auth_service_command, cli_env, drop_database

READY = '{"status": "ok", "checks": {"database": true, "keys": true}}'
METRICS = "# HELP auth_validate_requests_total Validate decisions.\n"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*auth_service_command(), "check-status", *args],
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=60,
    )


def rows(output: str) -> dict[str, tuple[str, str]]:
    """component -> (status, detail) from the printed table."""
    found = {}
    for line in output.splitlines():
        parts = line.split(maxsplit=2)
        if parts and parts[0] in COMPONENTS:
            found[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return found


def test_healthy_service(database_url: str, serve: Callable[..., Served]) -> None:
    served = serve(AUTH_DATABASE_URL=database_url)
    result = run("--url", served.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert {c: s for c, (s, _) in rows(result.stdout).items()} == dict.fromkeys(COMPONENTS, "ok")
    assert result.stdout.splitlines()[-1] == "healthy"


def test_default_url_comes_from_auth_host_and_port(
    database_url: str, serve: Callable[..., Served]
) -> None:
    served = serve(AUTH_DATABASE_URL=database_url)
    result = run(AUTH_HOST="0.0.0.0", AUTH_PORT=str(served.port))  # noqa: S104
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"checking http://127.0.0.1:{served.port}"


def test_stopped_service(database_url: str, serve: Callable[..., Served]) -> None:
    served = serve(AUTH_DATABASE_URL=database_url)
    served.stop()
    result = run("--url", served.url)
    assert result.returncode == 1
    assert result.stderr == ""  # no traceback, no error: an answer
    assert all(status == "FAIL" for status, _ in rows(result.stdout).values())
    assert len(rows(result.stdout)) == 5
    assert result.stdout.splitlines()[-1] == "unhealthy: live, ready, database, keys, metrics"


async def test_database_gone(
    server_url: str, database_url: str, serve: Callable[..., Served]
) -> None:
    served = serve(AUTH_DATABASE_URL=database_url)
    await drop_database(server_url, database_url)
    result = run("--url", served.url)
    assert result.returncode == 1, result.stdout
    found = rows(result.stdout)
    assert found["live"][0] == "ok"
    assert found["ready"] == ("FAIL", "HTTP 503")
    assert found["database"] == ("FAIL", "does not answer")
    assert found["keys"][0] == "ok"
    assert result.stdout.splitlines()[-1] == "unhealthy: ready, database"


@pytest.mark.parametrize(
    ("ready", "metrics", "unhealthy"),
    [
        (Answer(200, READY), Answer(200, METRICS), []),
        (Answer(503, "starting"), Answer(200, METRICS), ["ready", "database", "keys"]),
        (
            Answer(503, '{"checks": {"database": true, "keys": false}}'),
            Answer(200, METRICS),
            ["ready", "keys"],
        ),
        (Answer(200, READY), Answer(200, "other_total 1\n"), ["metrics"]),
        (Answer(200, READY), Answer(404, "not found"), ["metrics"]),
        (Answer(None, problem="timed out"), Answer(200, METRICS), ["ready", "database", "keys"]),
    ],
    ids=["healthy", "ready-not-json", "keys-missing", "not-our-metrics", "no-metrics", "timeout"],
)
def test_assess(ready: Answer, metrics: Answer, unhealthy: list[str]) -> None:
    checks = assess(Answer(200, '{"status": "ok"}'), ready, metrics)
    assert [c.component for c in checks] == list(COMPONENTS)
    assert [c.component for c in checks if not c.healthy] == unhealthy
    last = table(checks)[-1]
    assert last == ("unhealthy: " + ", ".join(unhealthy) if unhealthy else "healthy")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        (None, None, "http://127.0.0.1:8080"),
        ("10.1.2.3", "9000", "http://10.1.2.3:9000"),
        ("::", "8081", "http://[::1]:8081"),
        ("::1", None, "http://[::1]:8080"),
    ],
)
def test_default_url(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: str | None, url: str
) -> None:
    for name, value in (("AUTH_HOST", host), ("AUTH_PORT", port)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert default_url() == url


def test_invalid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_PORT", "not-a-port")
    with pytest.raises(StatusError, match="AUTH_PORT"):
        default_url()
