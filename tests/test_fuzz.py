"""Fuzzing the HTTP API from its OpenAPI description (schemathesis), against a served process:
whatever it sends, the answer is never a server error."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from auth_service.openapi import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def served_url(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> object:
    """One service for the whole module (module-scoped: a fresh database of its own)."""
    import asyncio
    import secrets

    import asyncpg

    from .conftest import TEMPLATE_DB, cli_env, start_served, with_database

    name = "fuzz_" + secrets.token_hex(4)

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        finally:
            await conn.close()

    asyncio.run(create())
    served = start_served(
        tmp_path_factory.mktemp("fuzz"),
        cli_env(
            AUTH_DATABASE_URL=with_database(server_url, name),
            AUTH_THROTTLE_ACCOUNT_FAILURES="1000",
            AUTH_THROTTLE_ADDRESS_FAILURES="100000",
        ),
    )
    yield served.url
    served.stop()


@schema.parametrize()
@hypothesis.settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_input_makes_the_service_fail(case: schemathesis.Case, served_url: str) -> None:
    response = case.call(base_url=served_url, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])


def test_the_openapi_document_is_served(served_url: str) -> None:
    import httpx

    document = httpx.get(f"{served_url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/auth/validate" in document["paths"]
