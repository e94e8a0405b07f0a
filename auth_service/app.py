"""The application factory, its lifespan, and the one table from our errors to HTTP."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import db, keys, metrics, service_secrets, users
from .cache import TokenCache
from .config import FileConfig, load_config
from .csrf import load_csrf_key
from .errors import AuthServiceError, ConfigurationError, DatabaseError, ErrorCode
from .forwarded import TrustedProxies
from .issuers import IssuerRegistry
from .key_encryption import KeyRing, load_key_ring
from .keys import KeySet
from .logs import configure_logging, request_id_var
from .metrics import VALIDATE_REQUESTS
from .passwords import PasswordWorkers
from .policy import Rule, compile_rules
from .routes import browser, login, meta, pages, sessions
from .routes.context import RequestContextMiddleware
from .routes.validate import validate_endpoint
from .sessions import Lifetimes, RevocationList
from .settings import Settings
from .sync import StateSync
from .throttle import ThrottlePolicy
from .tokens import TokenParameters
from .validation import Authenticator

log = logging.getLogger(__name__)

VALIDATE_PATH = "/api/v1/auth/validate"


@dataclass(frozen=True, slots=True)
class Policy:
    """The access rules in force, with a pre-bound 403 counter for each rule id (the only
    values the ``reason`` label of a forbidden outcome can take)."""

    rules: tuple[Rule, ...]
    forbidden: dict[str, Any]
    names_hosts: bool = False  # some rule names a host: a request must say which host

    @classmethod
    def from_config(cls, config: FileConfig) -> Policy:
        rules = compile_rules(config.rules)
        return cls(
            rules,
            {r.id: VALIDATE_REQUESTS.labels("forbidden", r.id) for r in rules},
            names_hosts=any(r.host is not None for r in rules),
        )


def read_config(settings: Settings) -> FileConfig:
    """The configuration file named by AUTH_CONFIG, or an empty configuration."""
    return load_config(settings.config) if settings.config else FileConfig()


@dataclass(slots=True)
class Runtime:
    """Everything the lifespan opens, owned by one application instance."""

    settings: Settings
    pool: asyncpg.Pool
    keys: KeySet
    token_params: TokenParameters
    authenticator: Authenticator
    passwords: PasswordWorkers
    trusted_proxies: TrustedProxies
    csrf_key: bytes
    login_url: str
    revocations: RevocationList
    lifetimes: Lifetimes
    policy: Policy
    issuers: IssuerRegistry
    throttle: ThrottlePolicy
    metrics_allow: TrustedProxies | None  # None: everyone

    def state_gauges(self) -> dict[str, float]:
        """What /metrics reports about this process's state."""
        return {
            "auth_db_pool_connections": self.pool.get_size(),
            "auth_db_pool_idle_connections": self.pool.get_idle_size(),
            "auth_db_pool_max_connections": self.pool.get_max_size(),
            "auth_revoked_sessions": len(self.revocations),
            "auth_token_cache_entries": len(self.authenticator.cache),
            "auth_signing_keys": len(self.keys.verifying),
        }

    def use_keys(self, key_set: KeySet) -> None:
        """Sign and verify with a new key set (a rotation seen by ``sync``)."""
        self.keys = key_set
        self.authenticator.use_keys(key_set)


def token_parameters(settings: Settings) -> TokenParameters:
    """The token checks, taken from the settings once."""
    return TokenParameters(
        issuer=settings.token_issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        leeway_seconds=settings.leeway_seconds,
        max_length=settings.token_max_length,
        max_lifetime_seconds=max(settings.access_token_ttl_seconds, settings.session_ttl_seconds),
    )


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


class AuthServiceApp:
    """The ASGI application: validate on its fast path, everything else through Starlette."""

    def __init__(self, settings: Settings, *, freeze_after_start: bool = False) -> None:
        self.settings = settings
        self.freeze_after_start = freeze_after_start
        self.runtime: Runtime | None = None
        self._startup_error: str | None = None
        self.router = Starlette(
            routes=[
                Route("/api/v1/auth/login", login.login_json, methods=["POST"]),
                Route("/api/v1/auth/refresh", sessions.refresh, methods=["POST"]),
                Route("/api/v1/auth/logout", sessions.logout, methods=["POST"]),
                Route("/login", browser.login_page, methods=["GET"]),
                Route("/login", browser.login_submit, methods=["POST"]),
                Route("/logout", browser.logout_page, methods=["GET"]),
                Route("/logout", browser.logout_submit, methods=["POST"]),
                Route("/", browser.home, methods=["GET"]),
                Route("/.well-known/jwks.json", meta.jwks, methods=["GET"]),
                Route("/metrics", meta.metrics, methods=["GET"]),
                Route("/openapi.json", meta.openapi, methods=["GET"]),
                Route("/health/live", meta.live, methods=["GET"]),
                Route("/health/ready", meta.ready, methods=["GET"]),
                Route("/health", meta.health, methods=["GET"]),
                Route(VALIDATE_PATH, meta.not_ready),
            ],
            lifespan=self._lifespan,
            exception_handlers={
                HTTPException: _http_error,
                asyncpg.DataError: _unstorable,
                AuthServiceError: _internal_error,
                asyncpg.PostgresError: _internal_error,
                asyncpg.InterfaceError: _internal_error,
                ConnectionError: _internal_error,
                TimeoutError: _internal_error,
            },
        )
        self.router.add_middleware(RequestContextMiddleware, app_ref=self)
        self.trusted_proxies = TrustedProxies(settings.trusted_proxies)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        runtime = self.runtime
        if runtime is not None and scope["type"] == "http" and scope["path"] == VALIDATE_PATH:
            await validate_endpoint(runtime, scope, receive, send)
            return
        if scope["type"] == "lifespan":
            send = self._concise_startup_failure(send)
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
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            async with self._started(app):
                yield
        except AuthServiceError as e:
            self._startup_error = str(e)
            raise

    @asynccontextmanager
    async def _started(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        file_config = read_config(settings)
        ring = load_key_ring(settings)
        async with (
            db.database_url(settings) as dsn,
            httpx.AsyncClient(timeout=5.0, follow_redirects=False) as http,
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
                issuers = IssuerRegistry(
                    file_config.issuers,
                    http,
                    cooldown=settings.jwks_cooldown_seconds,
                    leeway=settings.leeway_seconds,
                )
                await issuers.refresh_all()
                runtime = self._build_runtime(pool, key_set, csrf_key, file_config, issuers)
                sync = StateSync(
                    dsn,
                    pool,
                    runtime.revocations,
                    key_set,
                    ring,
                    runtime.use_keys,
                    settings.sync_interval_seconds,
                )
                await sync.start()
                jwks_task = asyncio.create_task(
                    issuers.refresh_periodically(settings.jwks_refresh_seconds)
                )
                signals = _install_signal_handlers(runtime)
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
                    metrics.watch_state(None)
                    if summaries is not None:
                        summaries.cancel()
                    _remove_signal_handlers(signals)
                    jwks_task.cancel()
                    await sync.stop()
                    runtime.passwords.close()
            finally:
                await pool.close()

    def _build_runtime(
        self,
        pool: asyncpg.Pool,
        key_set: KeySet,
        csrf_key: bytes,
        file_config: FileConfig,
        issuers: IssuerRegistry,
    ) -> Runtime:
        settings = self.settings
        params = token_parameters(settings)
        revocations = RevocationList()
        cache = TokenCache(settings.token_cache_max_entries)
        return Runtime(
            settings=settings,
            pool=pool,
            keys=key_set,
            token_params=params,
            authenticator=Authenticator(
                key_set, params, cache, settings.session_cookie_name, revocations, issuers
            ),
            passwords=PasswordWorkers(settings.password_hash_workers),
            trusted_proxies=self.trusted_proxies,
            csrf_key=csrf_key,
            login_url=settings.public_url + "/login",
            revocations=revocations,
            lifetimes=Lifetimes.from_settings(settings),
            policy=Policy.from_config(file_config),
            issuers=issuers,
            throttle=ThrottlePolicy.from_settings(settings),
            metrics_allow=TrustedProxies(settings.metrics_allow)
            if settings.metrics_allow
            else None,
        )


def reload_config(runtime: Runtime) -> bool:
    """SIGHUP: read the configuration file again. A bad file is refused (ERROR) and the rules
    and issuers in force stay; a good one replaces them. True when the new file took effect."""
    try:
        config = read_config(runtime.settings)
    except ConfigurationError as e:
        log.error(
            "configuration reload refused; the previous configuration stays",
            extra={"error": str(e)},
        )
        return False
    runtime.policy = Policy.from_config(config)
    added = runtime.issuers.reconfigure(config.issuers)
    runtime.authenticator.cache.clear()  # decisions may depend on issuer settings
    _background(runtime.issuers.refresh_some(added))
    log.info(
        "configuration reloaded", extra={"rules": len(config.rules), "issuers": len(config.issuers)}
    )
    return True


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background(work: Any) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _install_signal_handlers(runtime: Runtime) -> list[int]:
    """SIGHUP reloads the configuration file; SIGUSR1 refreshes every issuer's JWKS."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    handlers = {
        signal.SIGHUP: lambda: reload_config(runtime),
        signal.SIGUSR1: lambda: _background(runtime.issuers.refresh_all()),
    }
    for number, handler in handlers.items():
        try:
            loop.add_signal_handler(number, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread (an embedding host): no signals
        installed.append(number)
    return installed


def _remove_signal_handlers(numbers: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for number in numbers:
        loop.remove_signal_handler(number)


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


def error_body(code: ErrorCode | str, description: str) -> dict[str, Any]:
    """Our JSON error shape."""
    return {
        "error": str(code),
        "error_description": description,
        "request_id": request_id_var.get(),
    }


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "request_too_large",
        415: "unsupported_media_type",
    }.get(exc.status_code, ErrorCode.INVALID_REQUEST.value)
    if exc.status_code >= 500:
        code = "service_unavailable"
    if pages.wants_html(request):
        return pages.error_page(exc.status_code, str(exc.detail), headers=exc.headers)
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers={"cache-control": "no-store", **(exc.headers or {})},
    )


async def _unstorable(request: Request, exc: Exception) -> Response:
    """Input the database refuses (a NUL character, say) is the client's mistake: a 400."""
    log.info("request refused: input the database cannot store (%s)", type(exc).__name__)
    if pages.wants_html(request):
        return pages.error_page(400, "The request has characters that cannot be stored.")
    return JSONResponse(
        error_body(ErrorCode.INVALID_REQUEST, "the request has characters that cannot be stored"),
        status_code=400,
        headers={"cache-control": "no-store"},
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(
        exc,
        DatabaseError
        | ConnectionError
        | TimeoutError
        | asyncpg.PostgresError
        | asyncpg.InterfaceError,
    ):
        log.error("database unavailable: %s", type(exc).__name__)
        if pages.wants_html(request):
            return pages.error_page(503, "Please try again in a moment.")
        return JSONResponse(
            error_body("service_unavailable", "the database is unavailable"),
            status_code=503,
            headers={"cache-control": "no-store"},
        )
    log.error("request failed: %s", exc)
    if pages.wants_html(request):
        return pages.error_page(500, "Please try again in a moment.")
    return JSONResponse(
        error_body(ErrorCode.INTERNAL_ERROR, "internal error"),
        status_code=500,
        headers={"cache-control": "no-store"},
    )
