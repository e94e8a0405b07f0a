"""Through Traefik and nginx: the upstream learns which issuer vouches for the caller
(``X-Auth-Issuer``), and a client cannot claim one (finding M6 of issue 16)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import create_user
from ..idp import StandInProvider
from .conftest import E2E_RULES, Stack
from .test_proxies import get_app, json_login, upstream_headers


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    idp = StandInProvider()
    yield idp
    idp.close()


@pytest.fixture
def stack_env(provider: StandInProvider, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "auth.toml"
    config.write_text(
        E2E_RULES
        + f"""
        [[issuers]]
        issuer = "{provider.issuer}"
        audience = "api://orders"
        username_claim = "preferred_username"
        username_prefix = "corp:"
        """
    )
    return {"AUTH_CONFIG": str(config)}


async def test_the_upstream_learns_the_issuer_and_never_a_clients(
    stack: Stack, provider: StandInProvider, database_url: str
) -> None:
    # An external token: the issuer's URL, whatever the client sent under that name.
    token = provider.token(preferred_username="alice")
    seen = upstream_headers(
        get_app(stack, Authorization=f"Bearer {token}", **{"X-Auth-Issuer": "forged"})
    )
    assert seen["x-auth-issuer"] == [provider.issuer]
    assert seen["x-auth-user"] == ["corp:alice"]
    assert seen["x-auth-user-id"] == ["user-123"]

    # Our own alice, with a client claiming the issuer for her: no issuer reaches the
    # upstream (nginx sends no header for an empty value; Traefik and Caddy an empty one).
    await create_user(database_url, "alice")
    ours = await json_login(stack)
    seen = upstream_headers(
        get_app(stack, Authorization=f"Bearer {ours}", **{"X-Auth-Issuer": provider.issuer})
    )
    assert seen["x-auth-user"] == ["alice"]
    assert seen.get("x-auth-issuer", [""]) == [""]
