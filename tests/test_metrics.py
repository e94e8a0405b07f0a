"""Metrics: every validate outcome, login attempt and cache look-up is counted."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
from prometheus_client.parser import text_string_to_metric_families

from auth_service.app import AuthServiceApp
from auth_service.jws import sign_es256

from .conftest import create_user, login

VALIDATE = "/api/v1/auth/validate"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_outcomes_logins_and_cache_are_counted(
    app: AuthServiceApp, client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    before = samples((await client.get("/metrics")).text)

    token = await login(client, "alice")
    await client.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
    await client.post("/api/v1/auth/login", json={"username": "alice"})
    for _ in range(3):
        await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
    await client.get(VALIDATE)
    await client.get(VALIDATE, headers={"Authorization": "Bearer not.a.token"})
    assert app.runtime is not None
    key = app.runtime.keys.signing
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    expired = sign_es256({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key.private_key)
    await client.get(VALIDATE, headers={"Authorization": f"Bearer {expired}"})

    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    validate = "auth_validate_requests_total"
    assert delta(validate, outcome="allowed", reason="ok") == 3
    assert delta(validate, outcome="unauthorized", reason="missing_token") == 1
    assert delta(validate, outcome="unauthorized", reason="invalid_token") == 1
    assert delta(validate, outcome="unauthorized", reason="expired_token") == 1
    assert delta("auth_login_attempts_total", outcome="success") == 1
    assert delta("auth_login_attempts_total", outcome="failure") == 1
    assert delta("auth_login_attempts_total", outcome="invalid_request") == 1
    assert delta("auth_token_cache_total", result="miss") == 1
    assert delta("auth_token_cache_total", result="hit") == 2
    assert delta("auth_validate_duration_seconds_count") == 6


def test_counts_from_every_worker_reach_one_scrape(database_url: str, serve: Any) -> None:
    served = serve("--workers", "2", AUTH_DATABASE_URL=database_url)
    for _ in range(40):
        # A new connection each time, so that both workers take requests.
        assert httpx.get(served.url + VALIDATE, headers={"Connection": "close"}).status_code == 401
    scraped = samples(httpx.get(served.url + "/metrics").text)
    assert (
        value(
            scraped, "auth_validate_requests_total", outcome="unauthorized", reason="missing_token"
        )
        == 40
    )
