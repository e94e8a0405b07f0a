"""Prometheus metrics (prometheus-client).

With ``--workers N`` the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported,
so that every worker writes its values there and one scrape sees them all.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

VALIDATE_OUTCOMES = ("allowed", "unauthorized", "forbidden", "error")

VALIDATE_REQUESTS = Counter(
    "auth_validate_requests",
    "Validate decisions by outcome and reason.",
    ["outcome", "reason"],
)
VALIDATE_DURATION = Histogram(
    "auth_validate_duration_seconds",
    "Time spent answering a validate request, in seconds.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
LOGIN_ATTEMPTS = Counter(
    "auth_login_attempts",
    "Login attempts by outcome.",
    ["outcome"],
)
TOKEN_CACHE = Counter(
    "auth_token_cache",
    "Look-ups of the verified-token cache, by result.",
    ["result"],
)

JWKS_FETCHES = Counter(
    "auth_jwks_fetches",
    "JWKS fetches from configured external issuers, by issuer and outcome.",
    ["issuer", "outcome"],
)

CACHE_HIT = TOKEN_CACHE.labels("hit")
CACHE_MISS = TOKEN_CACHE.labels("miss")


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (of every worker in multi-process mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
