"""The application: validate on its fast path, every other route in one FastAPI
application, and the lifespan that opens the runtime both of them use."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from . import db, keys, metrics, service_secrets, users
from .csrf import load_csrf_key
from .errors import AuthServiceError
from .forwarded import TrustedProxies
from .issuers import IssuerRegistry
from .key_encryption import KeyRing, load_key_ring
from .logs import configure_logging
from .oauth.cimd import CimdPolicy, cimd_http_client
from .oauth.client_documents import ClientDocuments
from .openapi import VALIDATE_PATH, install_openapi, validate_router
from .routes import (
    api,
    browser,
    docs,
    meta,
    oauth,
    oauth_authorize,
    oauth_consents,
    oauth_token,
    resource_metadata,
)
from .routes.context import RequestContextMiddleware
from .routes.errors import install_error_handlers
from .routes.last_resort import LastResortMiddleware
from .routes.overload import LOGIN_PATH, refuse_overloaded_login
from .routes.validate import validate_endpoint
from .runtime import (
    Runtime,
    build_runtime,
    install_signal_handlers,
    read_config,
    remove_signal_handlers,
)
from .settings import Settings
from .sync import StateSync

log = logging.getLogger(__name__)


async def _seal_clear_secrets(conn: db.Connection, ring: KeyRing) -> None:
    """Rows from before secrets were sealed (or written by an older replica): sealed now."""
    sealed = await keys.seal_signing_keys(conn, ring)
    sealed += await service_secrets.seal_service_secrets(conn, ring)
    if sealed:
        log.info(
            "encrypted private keys stored in clear with the key-encryption key",
            extra={"rows": sealed, "key_encryption_key": ring.current.label},
        )


async def _announce_first_user(pool: asyncpg.Pool) -> None:
    if await users.count_users(pool) == 0:
        log.warning(
            "no users yet; add the first one with: "
            "auth-service user add NAME --password-stdin --group admins"
        )


def _announce_oauth(settings: Settings) -> None:
    """One line when the authorization server is off by default for want of a usable issuer."""
    if settings.oauth_enabled is None and not settings.oauth_active:
        log.warning(
            "OAuth authorization server off: the issuer %r %s (set AUTH_PUBLIC_URL or "
            "AUTH_ISSUER, or AUTH_OAUTH_ENABLED=false to silence this)",
            settings.token_issuer,
            settings.oauth_issuer_problem,
        )


class AuthServiceApp:
    """The ASGI application: validate on its fast path, a JSON login the hashing queue has
    no room for refused on another, everything else through FastAPI."""

    def __init__(self, settings: Settings, *, freeze_after_start: bool = False) -> None:
        self.settings = settings
        self.freeze_after_start = freeze_after_start
        self.runtime: Runtime | None = None
        self._startup_error: str | None = None
        self.router = _fastapi_app(settings, self._lifespan)
        # The last added is the outermost: the last resort answers inside the request context.
        self.router.add_middleware(LastResortMiddleware)
        self.router.add_middleware(RequestContextMiddleware, app_ref=self)
        self.trusted_proxies = TrustedProxies(settings.trusted_proxies)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        runtime = self.runtime
        if runtime is not None and scope["type"] == "http":
            if scope["path"] == VALIDATE_PATH:
                await validate_endpoint(runtime, scope, receive, send)
                return
            if (
                scope["path"] == LOGIN_PATH
                and scope["method"] == "POST"
                and await refuse_overloaded_login(runtime, scope, send)
            ):
                return
        if scope["type"] == "lifespan":
            send = self._concise_startup_failure(send)
        elif scope["type"] == "http" and scope["method"] == "HEAD":
            # HEAD is GET without the body (the server leaves it out), as Starlette's own
            # routes answer it; FastAPI's take only the methods they name.
            scope = {**scope, "method": "GET"}
        await self.router(scope, receive, send)

    def _concise_startup_failure(self, send: Any) -> Any:
        """A start-up refused for a known reason (database, configuration) is reported in
        one line, not as a traceback."""

        async def send_concise(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed" and self._startup_error:
                message = {**message, "message": f"cannot start: {self._startup_error}"}
            await send(message)

        return send_concise

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        try:
            async with self._started(app):
                yield
        except AuthServiceError as e:
            self._startup_error = str(e)
            raise

    @asynccontextmanager
    async def _started(self, app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        file_config = read_config(settings)
        ring = load_key_ring(settings)
        cimd_policy = CimdPolicy.from_settings(settings)
        async with (
            db.database_url(settings) as dsn,
            httpx.AsyncClient(timeout=5.0, follow_redirects=False) as http,
            cimd_http_client(cimd_policy) as cimd_http,
        ):
            pool = await db.create_pool(settings, dsn)
            try:
                async with pool.acquire() as conn:
                    await db.apply_migrations(conn)
                    await _seal_clear_secrets(conn, ring)
                    if await keys.ensure_signing_key(conn, ring):
                        log.info("generated the first signing key")
                    key_set = await keys.load_key_set(conn, ring)
                    csrf_key = await load_csrf_key(conn, ring)
                await _announce_first_user(pool)
                _announce_oauth(settings)
                issuers = IssuerRegistry(
                    file_config.issuers,
                    http,
                    cooldown=settings.jwks_cooldown_seconds,
                    leeway=settings.leeway_seconds,
                )
                await issuers.refresh_all()
                runtime = build_runtime(
                    settings,
                    pool,
                    key_set,
                    csrf_key,
                    file_config,
                    issuers,
                    self.trusted_proxies,
                    ClientDocuments(cimd_http, cimd_policy),
                )
                sync = StateSync(
                    dsn,
                    pool,
                    runtime.revocations,
                    key_set,
                    ring,
                    runtime.use_keys,
                    settings.sync_interval_seconds,
                    settings.db_timeout_seconds,
                )
                await sync.start()
                jwks_task = asyncio.create_task(
                    issuers.refresh_periodically(settings.jwks_refresh_seconds)
                )
                signals = install_signal_handlers(runtime)
                metrics.watch_state(runtime.state_gauges)
                summaries = (
                    asyncio.create_task(metrics.log_summaries(settings.summary_interval_seconds))
                    if settings.summary_interval_seconds
                    else None
                )
                self.runtime = runtime
                app.state.runtime = runtime
                log.info("auth-service ready", extra={"signing_kid": key_set.signing.kid})
                if self.freeze_after_start:
                    # What start-up made (modules, classes, settings: some 60,000 objects)
                    # lives as long as the server: out of the collector's sight, every full
                    # collection is 14 ms shorter (bench/RESULTS.md).
                    gc.collect()
                    gc.freeze()
                try:
                    yield
                finally:
                    self.runtime = None
                    app.state.runtime = None
                    metrics.watch_state(None)
                    if summaries is not None:
                        summaries.cancel()
                    remove_signal_handlers(signals)
                    jwks_task.cancel()
                    await sync.stop()
                    runtime.passwords.close()
            finally:
                await pool.close()


def _fastapi_app(settings: Settings, lifespan: Any) -> FastAPI:
    """Every route but validate's fast path: one router per area, our error renderer, and
    the OpenAPI document (with validate in it); Swagger UI at /docs when AUTH_API_DOCS."""
    app = FastAPI(
        title="auth-service",
        version=version("auth-service"),
        description="Authentication gate for reverse proxies: validate, login, sessions, "
        "and an OAuth 2.1 authorization server for MCP clients.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
        # Every URL is served exactly as written: no 307 from "/token/" to "/token", whose
        # Location Starlette builds from the request's Host header, and which MCP clients
        # would not follow anyway.
        redirect_slashes=False,
    )
    routers = [validate_router, api.router, browser.router, meta.router]
    if settings.oauth_active:
        routers += [
            oauth.router,
            oauth_token.router,
            oauth_authorize.router,
            oauth_consents.router,
            resource_metadata.router,
        ]
    if settings.api_docs:
        routers.append(docs.router)
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, routers)
    install_openapi(app, settings)
    return app


def create_app(
    settings: Settings | None = None,
    *,
    configure_logs: bool = True,
    freeze_after_start: bool = False,
) -> AuthServiceApp:
    """Build the application from ``settings`` (default: the ``AUTH_*`` environment)."""
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_format)
    return AuthServiceApp(settings, freeze_after_start=freeze_after_start)


def create_server_app() -> AuthServiceApp:
    """The factory ``auth-service serve`` gives uvicorn: ``create_app`` for a process that
    serves until it stops (tests build many apps in one process and leave the collector be)."""
    return create_app(freeze_after_start=True)
