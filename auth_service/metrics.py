"""Prometheus metrics (prometheus-client).

With ``--workers N`` the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported,
so that every worker writes its values there and one scrape sees them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from importlib.metadata import version

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

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
# Read from the database at each scrape (every replica reports the same value: take the max).
LOGIN_LOCKED = Gauge(
    "auth_login_locked",
    "Login throttle counters locked (accounts: slowed) right now, by scope.",
    ["scope"],
    multiprocess_mode="livemostrecent",
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

# The OAuth endpoints by outcome: a bounded set of labels, every child made here so that
# /metrics shows zeros (no label ever comes from a request).
OAUTH_ENDPOINTS: tuple[str, ...] = (
    "resource_metadata",
    "server_metadata",
    "register",
    "authorize",
    "consent",
    "token",
    "revoke",
)
OAUTH_OUTCOMES: tuple[str, ...] = (
    "ok",
    "login",
    "consent",
    "code",
    "denied",
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "invalid_target",
    "access_denied",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "login_required",
    "consent_required",
    "invalid_token",
    "not_found",
    "too_many_attempts",
    "internal_error",
)
OAUTH_REQUESTS = Counter(
    "auth_oauth_requests",
    "OAuth authorization-server and resource-metadata requests, by endpoint and outcome.",
    ["endpoint", "outcome"],
)
for _endpoint in OAUTH_ENDPOINTS:
    for _outcome in OAUTH_OUTCOMES:
        OAUTH_REQUESTS.labels(_endpoint, _outcome)


def count_oauth(endpoint: str, outcome: str) -> None:
    """Count one OAuth request; an outcome outside the set counts as ``internal_error``."""
    OAUTH_REQUESTS.labels(
        endpoint, outcome if outcome in OAUTH_OUTCOMES else "internal_error"
    ).inc()


CACHE_HIT = TOKEN_CACHE.labels("hit")
CACHE_MISS = TOKEN_CACHE.labels("miss")


class StateCollector(Collector):
    """Gauges read from the running service at scrape time (cheap: no I/O)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        values = self._read()
        for name, help_text in _STATE_GAUGES.items():
            if name in values:
                yield GaugeMetricFamily(name, help_text, value=values[name])
        info = GaugeMetricFamily("auth_build_info", "Version of auth-service.", labels=["version"])
        info.add_metric([version("auth-service")], 1.0)
        yield info


_STATE_GAUGES = {
    "auth_db_pool_connections": "Connections open in the database pool.",
    "auth_db_pool_idle_connections": "Idle connections in the database pool.",
    "auth_db_pool_max_connections": "Largest size the database pool may reach.",
    "auth_revoked_sessions": "Revoked session ids held in memory.",
    "auth_token_cache_entries": "Verified tokens held in the cache.",
    "auth_signing_keys": "Our keys that currently verify tokens.",
    "auth_login_queue_depth": "Logins waiting for a password-hashing thread.",
}
_state: StateCollector | None = None


def watch_state(read: Callable[[], dict[str, float]] | None) -> None:
    """Expose ``read()``'s gauges on /metrics (None: stop)."""
    global _state
    if _state is not None:
        REGISTRY.unregister(_state)
    _state = StateCollector(read) if read else None
    if _state is not None:
        REGISTRY.register(_state)


def counter_totals(counter: Counter) -> dict[tuple[str, ...], float]:
    """This process's current value of each labelled child of ``counter``."""
    totals: dict[tuple[str, ...], float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                totals[tuple(sample.labels.values())] = sample.value
    return totals


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (of every worker in multi-process mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        if _state is not None:
            registry.register(_state)  # this worker's own state
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def _outcome_totals() -> dict[str, float]:
    totals: dict[str, float] = {}
    for (outcome, _reason), value in counter_totals(VALIDATE_REQUESTS).items():
        totals[outcome] = totals.get(outcome, 0.0) + value
    return totals


async def log_summaries(interval: float) -> None:
    """Every ``interval`` seconds, one INFO line with the validate outcomes since the last one,
    so that the 401 rate shows in logs kept at INFO (expected 401s are only DEBUG lines)."""
    previous = _outcome_totals()
    while True:
        await asyncio.sleep(interval)
        current = _outcome_totals()
        counts = {o: int(current.get(o, 0) - previous.get(o, 0)) for o in VALIDATE_OUTCOMES}
        previous = current
        total = sum(counts.values())
        if total:
            log.info(
                "validate summary",
                extra={
                    **counts,
                    "total": total,
                    "unauthorized_ratio": round(counts["unauthorized"] / total, 4),
                    "interval_seconds": interval,
                },
            )
