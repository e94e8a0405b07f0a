"""The served OpenAPI document and the code agree: ``schemathesis run <url>/openapi.json
--checks all -H "Authorization: Bearer <token>"`` against a served process finds nothing.
It runs here in two parts, logout last, so that the token stays valid while everything
else is tried (run whole, the same command also finds nothing: logout just ends the
token's session part-way).

schemathesis sends what the document allows and what it forbids, to every operation (validate
too, every method), and checks each answer against the document: its status, content type,
body schema and headers, that valid input is taken and invalid input refused, that an
undeclared method is a 405 whose ``Allow`` names the declared ones, and never a 5xx. What
OpenAPI 3.1 cannot say of validate is in ``schemathesis.toml``, beside the README.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import (
    PASSWORD,
    Served,
    cli_env,
    create_user,
    new_database,
    start_served,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service for the whole module, on a fresh database of its own, with one user."""

    async def create() -> str:
        url = await new_database(server_url, "fuzz_")
        await create_user(url, "alice")
        return url

    database_url = asyncio.run(create())
    served = start_served(
        tmp_path_factory.mktemp("fuzz"),
        cli_env(
            AUTH_DATABASE_URL=database_url,
            AUTH_THROTTLE_ACCOUNT_FAILURES="1000",
            AUTH_THROTTLE_ADDRESS_FAILURES="100000",
        ),
    )
    yield served
    served.stop()


def _token(url: str) -> str:
    answer = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _schemathesis(url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``schemathesis run URL/openapi.json --checks all -H "Authorization: Bearer TOKEN"``
    from the repository root (where its ``schemathesis.toml`` is), with a fixed seed."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "-H",
        f"Authorization: Bearer {token}",
        "--seed",
        "20261130",
        "--no-color",
        *extra,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_served_document_and_the_code_agree(served: Served) -> None:
    # The whole document in two runs: a logout with the token ends its session, so first
    # everything else, the token valid all along, then the logout.
    logout = "/api/v1/auth/logout"
    for where, path in (("--exclude-path", logout), ("--include-path", logout)):
        run = _schemathesis(served.url, _token(served.url), where, path)
        assert run.returncode == 0, run.stdout[-6000:]
        assert " passed" in run.stdout and "failure" not in run.stdout
        assert "Authentication failed" not in run.stdout, run.stdout[-8000:]


def test_the_openapi_document_is_fastapis_and_covers_every_route(served: Served) -> None:
    document = httpx.get(f"{served.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    validate = paths["/api/v1/auth/validate"]
    assert sorted(validate) == ["delete", "get", "head", "options", "patch", "post", "put", "trace"]
    statuses = set(validate["get"]["responses"])
    assert {"200", "302", "400", "401", "403", "414", "431"} <= statuses
    assert "X-Auth-User" in validate["get"]["responses"]["200"]["headers"]
    assert "WWW-Authenticate" in validate["get"]["responses"]["401"]["headers"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert {"200", "400", "401", "413", "415", "422", "429", "503"} <= set(login)
    assert "Retry-After" in login["429"]["headers"]
    for path in ("/login", "/logout", "/", "/.well-known/jwks.json", "/metrics", "/health"):
        assert path in paths
    for operations in paths.values():
        for operation in operations.values():
            for answer in operation["responses"].values():
                assert "X-Request-Id" in answer["headers"]
    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "error_description", "request_id"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
