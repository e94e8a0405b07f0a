"""JWKS, metrics and health endpoints."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import db, throttle
from ..logs import client_ip_var, request_id_var
from ..metrics import LOGIN_LOCKED, render
from ..openapi import openapi_document


async def jwks(request: Request) -> Response:
    """``/.well-known/jwks.json``: our public keys, each with ``kid``, ``alg`` and ``use``."""
    return JSONResponse(
        request.app.state.runtime.keys.jwks(),
        headers={"cache-control": "public, max-age=300"},
    )


async def openapi(request: Request) -> Response:
    """``/openapi.json``: the description of this API."""
    return JSONResponse(openapi_document())


async def metrics(request: Request) -> Response:
    """Prometheus exposition, to the addresses of AUTH_METRICS_ALLOW when it is set.

    The address is the client's (behind a proxy, not the proxy's): allowing a proxy's address
    must not open the metrics to everyone who reaches that proxy.
    """
    runtime = request.app.state.runtime
    if runtime.metrics_allow is not None:
        if client_ip_var.get() not in runtime.metrics_allow:
            return JSONResponse(
                {
                    "error": "forbidden",
                    "error_description": "metrics are not served to you",
                    "request_id": request_id_var.get(),
                },
                status_code=403,
                headers={"cache-control": "no-store"},
            )
    await _read_login_locks(runtime)
    body, content_type = render()
    return Response(body, media_type=content_type)


async def _read_login_locks(runtime: Any) -> None:
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


async def live(request: Request) -> Response:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def _checks(request: Request) -> dict[str, bool]:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return {"database": False, "keys": False}
    return {"database": await db.ping(runtime.pool), "keys": bool(runtime.keys.verifying)}


async def ready(request: Request) -> Response:
    """200 when the database answers and keys are loaded; 503 otherwise."""
    checks = await _checks(request)
    healthy = all(checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


async def health(request: Request) -> Response:
    """A JSON summary for people and scripts."""
    checks = await _checks(request)
    runtime = getattr(request.app.state, "runtime", None)
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


async def not_ready(request: Request) -> Response:
    """Validate before start-up finished: refuse (fail closed)."""
    return JSONResponse(
        {"error": "service_unavailable", "error_description": "starting up"}, status_code=503
    )
