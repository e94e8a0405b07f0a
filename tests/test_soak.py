"""A one-minute soak (issue 14, item 5): a served process under mixed load (validate with
cached and fresh tokens, sessions from login to logout, refreshes, 401 noise, key rotations)
answers only what is expected, its memory levels off, and PostgreSQL serves it exactly the
connections its pool holds. ``python -m bench.soak --minutes 10`` is the long run."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from bench.soak import SOAK_ENV, verdict
from bench.soak_load import MIB, run_soak

from .conftest import Served, create_user, run_cli

MEMORY_GROWTH_MIB = 8  # the second half's highest RSS over the first half's


def test_a_minute_of_mixed_load_levels_off_without_errors_or_leaks(
    database_url: str, serve: Callable[..., Served]
) -> None:
    users = [(f"soak{n}", secrets.token_urlsafe(18)) for n in range(4)]
    for name, password in users:
        asyncio.run(create_user(database_url, name, password))
    served = serve(AUTH_DATABASE_URL=database_url, **SOAK_ENV)

    def rotate() -> None:
        assert run_cli("keys", "rotate", AUTH_DATABASE_URL=database_url).returncode == 0

    result = asyncio.run(
        run_soak(
            served.url,
            served.process.pid,
            database_url,
            users[:-1],
            users[-1],
            seconds=60,
            interval=5,
            rotate_every=20,
            rotate=rotate,
        )
    )
    failures = verdict(result, MEMORY_GROWTH_MIB)
    assert not failures, "\n".join(failures)
    # Every kind of traffic really ran, and every kind of sample was taken.
    for kind in (
        "login 200",
        "refresh 200",
        "logout 200",
        "validate cached 200",
        "validate fresh 200",
        "validate logged out 401",
        "noise: forged 401",
        "noise: wrong password 401",
    ):
        assert result.outcomes[kind] > 0, kind
    assert result.rotations >= 2
    assert len(result.samples) >= 5
    assert all(s.server_connections > 0 and s.rss_bytes > 20 * MIB for s in result.samples)
