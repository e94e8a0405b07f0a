"""JWKS, metrics and health endpoints."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import asyncpg
from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from .. import db, throttle
from ..errors import ErrorCode
from ..logs import client_ip_var
from ..metrics import LOGIN_LOCKED, render
from ..runtime import Runtime
from .dependencies import OptionalRuntimeDep, RuntimeDep
from .errors import error_response
from .schemas import JWKS, Health, Live, Ready, Serving, refusal

router = APIRouter(tags=["keys, metrics, health"])
_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"description": "the database does not answer, or no keys are loaded"}
}


@router.get("/.well-known/jwks.json", response_model=JWKS)
async def jwks(runtime: RuntimeDep) -> Response:
    """Our public keys, each with ``kid``, ``alg`` and ``use``."""
    return JSONResponse(runtime.keys.jwks(), headers={"cache-control": "public, max-age=300"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        403: refusal("AUTH_METRICS_ALLOW does not name the client's address"),
    },
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus exposition, to the addresses of AUTH_METRICS_ALLOW when it is set.

    The address is the client's (behind a proxy, not the proxy's): allowing a proxy's address
    must not open the metrics to everyone who reaches that proxy.
    """
    if runtime.metrics_allow is not None:
        if client_ip_var.get() not in runtime.metrics_allow:
            return error_response(ErrorCode.FORBIDDEN, "metrics are not served to you", 403)
    await _read_login_locks(runtime)
    body, content_type = render()
    return Response(body, media_type=content_type)


async def _read_login_locks(runtime: Runtime) -> None:
    """Set ``auth_login_locked`` from the database; without an answer within a second, leave
    it out of this scrape rather than report a stale value."""
    try:
        async with asyncio.timeout(1.0):
            counts = await throttle.locked_counts(runtime.pool)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        LOGIN_LOCKED.clear()
        return
    for scope, count in counts.items():
        LOGIN_LOCKED.labels(scope.value).set(count)


@router.get("/health/live", response_model=Live)
async def live() -> Response:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def _checks(runtime: Runtime | None) -> dict[str, bool]:
    if runtime is None:
        return {"database": False, "keys": False}
    return {"database": await db.ping(runtime.pool), "keys": bool(runtime.keys.verifying)}


@router.get(
    "/health/ready", response_model=Ready, responses={503: {"model": Ready, **_UNHEALTHY[503]}}
)
async def ready(runtime: OptionalRuntimeDep) -> Response:
    """200 when the database answers and keys are loaded; 503 otherwise, and from the moment
    SIGTERM arrives (``draining``)."""
    checks = await _checks(runtime)
    draining = runtime is not None and runtime.draining
    healthy = all(checks.values()) and not draining
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks, "draining": draining},
        status_code=200 if healthy else 503,
    )


@router.get(
    "/health/validate",
    response_model=Serving,
    responses={503: {"model": Serving, "description": "stopping, or not started yet"}},
)
async def serving(runtime: OptionalRuntimeDep) -> Response:
    """What a proxy's health check asks: 200 while validate answers here, whether or not the
    database does (validate needs only memory); 503 before start-up ends and from the moment
    SIGTERM arrives."""
    draining = runtime is not None and runtime.draining
    healthy = runtime is not None and bool(runtime.keys.verifying) and not draining
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "draining": draining},
        status_code=200 if healthy else 503,
    )


@router.get("/health", response_model=Health, responses={503: {"model": Health, **_UNHEALTHY[503]}})
async def health(runtime: OptionalRuntimeDep) -> Response:
    """A JSON summary for people and scripts."""
    checks = await _checks(runtime)
    healthy = all(checks.values())
    summary: dict[str, object] = {
        "status": "ok" if healthy else "unavailable",
        "version": version("auth-service"),
        "checks": checks,
    }
    if runtime is not None:
        summary["signing_kid"] = runtime.keys.signing.kid
        summary["token_cache_entries"] = len(runtime.authenticator.cache)
    return JSONResponse(summary, status_code=200 if healthy else 503)
