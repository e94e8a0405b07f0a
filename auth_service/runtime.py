"""The runtime: what the lifespan opens (pool, keys, authenticator, ...), built and reloaded
here, and read by every route through a typed dependency.

It lives apart from the application module so that routes import it and never the
application itself (which imports the routes).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from .cache import TokenCache
from .config import FileConfig, load_config
from .db import Connection
from .errors import ConfigurationError
from .forwarded import TrustedProxies
from .issuers import IssuerRegistry
from .keys import KeySet
from .metrics import VALIDATE_REQUESTS
from .oauth.client_auth import DocumentFetcher
from .oauth.client_documents import ClientDocuments
from .oauth.clients import Client
from .oauth.resources import ResourceSet
from .passwords import PasswordWorkers
from .policy import Rule, compile_rules
from .sessions import Lifetimes, RevocationList
from .settings import Settings
from .throttle import ThrottlePolicy
from .tokens import TokenParameters
from .validation import Authenticator

log = logging.getLogger(__name__)


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
    resources: ResourceSet  # OAuth resources (oauth/resources.py), reloaded with the rules
    issuers: IssuerRegistry
    throttle: ThrottlePolicy
    metrics_allow: TrustedProxies | None  # None: everyone
    # Clients named by an https client_id (oauth/client_documents.py); None: not accepted.
    client_documents: ClientDocuments | None = None
    draining: bool = False  # SIGTERM arrived: readiness says 503 while requests still pass

    @property
    def oauth_resources(self) -> ResourceSet | None:
        """The resources OAuth access tokens are made for, None when OAuth is off: validate
        then accepts no OAuth token and answers exactly as without OAuth."""
        return self.resources if self.settings.oauth_active else None

    @property
    def accepts_client_documents(self) -> bool:
        """Whether an https ``client_id`` is looked up by its metadata document."""
        return self.client_documents is not None and self.settings.oauth_cimd

    def document_fetcher(self, conn: Connection) -> DocumentFetcher | None:
        """How /authorize and /token, on ``conn``, get a client an https ``client_id``
        names: its metadata document, while ``AUTH_OAUTH_CIMD`` accepts them."""
        documents = self.client_documents
        if documents is None or not self.accepts_client_documents:
            return None

        async def fetch(client_id: str) -> Client:
            return await documents.resolve(conn, client_id)

        return fetch

    def state_gauges(self) -> dict[str, float]:
        """What /metrics reports about this process's state."""
        return {
            "auth_db_pool_connections": self.pool.get_size(),
            "auth_db_pool_idle_connections": self.pool.get_idle_size(),
            "auth_db_pool_max_connections": self.pool.get_max_size(),
            "auth_revoked_sessions": len(self.revocations),
            "auth_token_cache_entries": len(self.authenticator.cache),
            "auth_signing_keys": len(self.keys.verifying),
            "auth_login_queue_depth": self.passwords.queue.waiting,
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
        max_lifetime_seconds=max(
            settings.access_token_ttl_seconds,
            settings.session_ttl_seconds,
            settings.oauth_access_token_ttl,
        ),
    )


def build_runtime(
    settings: Settings,
    pool: asyncpg.Pool,
    key_set: KeySet,
    csrf_key: bytes,
    file_config: FileConfig,
    issuers: IssuerRegistry,
    trusted_proxies: TrustedProxies,
    client_documents: ClientDocuments | None = None,
) -> Runtime:
    """The runtime from what start-up opened and read."""
    params = token_parameters(settings)
    revocations = RevocationList()
    cache = TokenCache(settings.token_cache_max_entries)
    resources = ResourceSet(file_config.resources, file_config.rules)
    return Runtime(
        settings=settings,
        pool=pool,
        keys=key_set,
        token_params=params,
        authenticator=Authenticator(
            key_set,
            params,
            cache,
            settings.session_cookie_name,
            revocations,
            issuers,
            resources if settings.oauth_active else None,
        ),
        passwords=PasswordWorkers(
            settings.password_hash_workers,
            queue_size=settings.login_queue_size,
            max_wait=settings.login_queue_wait_seconds,
            nice=settings.password_hash_nice,
            yield_factor=settings.password_hash_yield,
        ),
        trusted_proxies=trusted_proxies,
        csrf_key=csrf_key,
        login_url=settings.public_url + "/login",
        revocations=revocations,
        lifetimes=Lifetimes.from_settings(settings),
        policy=Policy.from_config(file_config),
        resources=resources,
        issuers=issuers,
        throttle=ThrottlePolicy.from_settings(settings),
        metrics_allow=TrustedProxies(settings.metrics_allow) if settings.metrics_allow else None,
        client_documents=client_documents,
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
    runtime.resources = ResourceSet(config.resources, config.rules)
    runtime.authenticator.resources = runtime.oauth_resources
    added = runtime.issuers.reconfigure(config.issuers)
    # Decisions may depend on issuer settings, and a token whose resource has left the list
    # must stop working at once.
    runtime.authenticator.cache.clear()
    _background(runtime.issuers.refresh_some(added))
    log.info(
        "configuration reloaded",
        extra={
            "rules": len(config.rules),
            "issuers": len(config.issuers),
            "resources": len(config.resources),
        },
    )
    return True


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background(work: Any) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


class Drain:
    """SIGTERM: mark the runtime draining (readiness 503), keep serving for
    ``shutdown_delay_seconds``, then hand the signal to the server's own handler (uvicorn
    stops listening and finishes the requests in flight). A second SIGTERM stops at once.

    Without the delay the listening socket closes the moment the signal arrives, and a proxy
    that has not yet seen the readiness change sends its next requests to a closed port.
    """

    def __init__(self, runtime: Runtime, server_handler: Any) -> None:
        self.runtime = runtime
        self.server_handler = server_handler
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self.runtime.draining:
            if self._pending is not None:
                self._pending.cancel()
            self._stop()
            return
        self.runtime.draining = True
        delay = self.runtime.settings.shutdown_delay_seconds
        log.info("SIGTERM: draining; stopping in %s s", delay)
        self._pending = asyncio.get_running_loop().call_later(delay, self._stop)

    def _stop(self) -> None:
        self._pending = None
        if callable(self.server_handler):
            self.server_handler(signal.SIGTERM, None)
        else:  # no server handler to hand over to (the default action): stop as it would
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)


def install_signal_handlers(runtime: Runtime) -> list[tuple[int, Any]]:
    """SIGHUP reloads the configuration file; SIGUSR1 refreshes every issuer's JWKS; SIGTERM
    drains (``Drain``). Returns what to restore when the lifespan ends."""
    loop = asyncio.get_running_loop()
    installed: list[tuple[int, Any]] = []
    handlers: dict[int, Callable[[], object]] = {
        signal.SIGHUP: lambda: reload_config(runtime),
        signal.SIGUSR1: lambda: _background(runtime.issuers.refresh_all()),
        signal.SIGTERM: Drain(runtime, signal.getsignal(signal.SIGTERM)),
    }
    for number, handler in handlers.items():
        previous = signal.getsignal(number)
        try:
            loop.add_signal_handler(number, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread (an embedding host): no signals
        installed.append((number, previous))
    return installed


def remove_signal_handlers(installed: list[tuple[int, Any]]) -> None:
    """Undo ``install_signal_handlers`` (the lifespan ends): the server's own handlers again."""
    loop = asyncio.get_running_loop()
    for number, previous in installed:
        loop.remove_signal_handler(number)
        if previous is not None:
            signal.signal(number, previous)
