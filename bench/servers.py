"""The two servers under test and the steps that prepare auth-service for the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import BenchError
from .client import request
from .processes import free_port, running, wait_until_ok

VALIDATE_PATH = "/api/v1/auth/validate"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 120.0

# The settings that auth-service's own ``serve`` command gives uvicorn.
UVICORN_OPTIONS = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--workers",
    "1",
    "--no-server-header",
    "--no-proxy-headers",
    "--log-level",
    "warning",
]

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class AuthService:
    """A running auth-service: where it listens and the environment its commands need."""

    port: int
    env: dict[str, str]
    executable: str
    pid: int  # the server process (with one worker, the worker itself)


def _auth_service_executable() -> str:
    """The ``auth-service`` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "auth-service"
    if beside.exists():
        return str(beside)
    found = shutil.which("auth-service")
    if found is None:
        raise BenchError("the auth-service command is not installed (pip install -e .)")
    return found


def _service_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """Our environment without any AUTH_* setting, plus the ones the benchmark sets.

    No AUTH_DATABASE_URL: the service starts its embedded PostgreSQL in ``data_dir`` (or
    joins it, when another service of the run already started it there).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env["AUTH_DATA_DIR"] = str(data_dir)
    env["AUTH_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


def data_dir(workdir: Path) -> Path:
    """The embedded database's folder, shared by every auth-service of one run."""
    return workdir / "data"


@contextmanager
def auth_service(
    workdir: Path,
    *,
    name: str = "auth-service",
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[AuthService]:
    """``auth-service serve`` on a free port, on the run's database, ready when yielded."""
    log_path = workdir / f"{name}.log"
    executable = _auth_service_executable()
    env = _service_env(data_dir(workdir), extra_env or {})
    port = free_port()
    argv = [executable, "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    with running(name, argv, env=env, log_path=log_path) as proc:
        wait_until_ok(name, proc, port, "/health/ready", log_path, READY_TIMEOUT_SECONDS)
        yield AuthService(port=port, env=env, executable=executable, pid=proc.pid)


@contextmanager
def baseline_server(workdir: Path) -> Iterator[int]:
    """uvicorn serving ``bench.baseline_app:app``; yields its port once it answers."""
    log_path = workdir / "baseline.log"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline_app:app",
        "--app-dir",
        str(PROJECT_ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *UVICORN_OPTIONS,
    ]
    with running("baseline", argv, env=dict(os.environ), log_path=log_path) as proc:
        wait_until_ok("baseline", proc, port, "/", log_path, READY_TIMEOUT_SECONDS)
        yield port


def add_user(service: AuthService, username: str, password: str, group: str) -> None:
    """``auth-service user add`` with the password on stdin."""
    result = subprocess.run(
        [service.executable, "user", "add", username, "--password-stdin", "--group", group],
        input=password + "\n",
        env=service.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"auth-service user add failed ({result.returncode}): {result.stderr.strip()}"
        )


def login(service: AuthService, username: str, password: str) -> str:
    """An access token from ``POST /api/v1/auth/login``."""
    body = json.dumps({"username": username, "password": password}).encode()
    reply = request(
        service.port,
        "POST",
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json"},
        body=body,
        timeout=30.0,
    )
    if reply.status != 200:
        raise BenchError(f"login answered {reply.status}: {reply.body[:300]!r}")
    token = reply.json().get("access_token")
    if not isinstance(token, str) or not token:
        raise BenchError(f"login answered without an access_token: {reply.body[:300]!r}")
    return token


def check_validate(service: AuthService, token: str, username: str) -> None:
    """Validate must allow the token (naming the user) and refuse a request without one."""
    allowed = request(
        service.port, "GET", VALIDATE_PATH, headers={"Authorization": f"Bearer {token}"}
    )
    if allowed.status != 200 or allowed.headers.get("x-auth-user") != username:
        raise BenchError(
            f"validate did not allow the token: {allowed.status}, "
            f"x-auth-user={allowed.headers.get('x-auth-user')!r}, body {allowed.body[:300]!r}"
        )
    refused = request(service.port, "GET", VALIDATE_PATH)
    if refused.status != 401:
        raise BenchError(f"validate without a token answered {refused.status}, not 401")


def metric_values(service: AuthService) -> dict[str, float]:
    """The samples of the service's ``/metrics`` (in multi-worker mode, as one worker sees
    them), keyed by ``name{labels}`` exactly as printed."""
    reply = request(service.port, "GET", "/metrics")
    if reply.status != 200:
        raise BenchError(f"/metrics answered {reply.status}")
    text = reply.body.decode("utf-8", errors="replace")
    return {key: float(value) for key, value in _SAMPLE.findall(text)}


def token_cache_counts(service: AuthService) -> dict[str, float]:
    """The service's ``auth_token_cache_total`` counters by result (hit, miss)."""
    values = metric_values(service)
    return {
        result: values.get(f'auth_token_cache_total{{result="{result}"}}', 0.0)
        for result in ("hit", "miss")
    }
