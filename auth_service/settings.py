"""Configuration: one ``Settings`` object read from ``AUTH_*`` environment variables.

Built by ``create_app()`` or the CLI, never at import time, so that tests and commands can
pass their own values. Validators fail fast with a message that names the setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .oauth.urls import check_canonical

# Loopback and the private ranges: where a reverse proxy in front of us normally lives.
DEFAULT_TRUSTED_PROXIES = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host name, optionally with a leading dot meaning "this domain and its subdomains".
_DOMAIN = re.compile(r"\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


# Schemes a private-use redirect setting may not name: they have rules of their own.
_WEB_SCHEMES = {"http", "https", "javascript", "data", "file", "blob", "about", "vbscript"}

# The pre-session cookie's name before its prefix (see ``Settings.presession_cookie_name``).
PRESESSION_COOKIE = "auth_presession"


def _one_per_two_cores() -> int:
    """The default number of hashing threads: argon2id takes a core for each, so that
    validate keeps at least half of the machine whatever the logins do."""
    return max(1, (os.cpu_count() or 1) // 2)


def _cookie_prefix(secure: bool, domain: str | None) -> str:
    if not secure:
        return ""
    return "__Secure-" if domain else "__Host-"


class Settings(BaseSettings):
    """Every knob of the service; environment variable = ``AUTH_`` + upper-case field name."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    # Database: an external server, or (when unset) an embedded one with data in data_dir.
    database_url: SecretStr | None = None
    data_dir: Path = Path(".auth-service")
    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=10, ge=1, le=200)
    # The longest a request waits for the database, for each of: opening a connection, a free
    # connection from the pool, one query. Past it the request answers 503 (db.py).
    db_timeout_seconds: float = Field(default=3.0, ge=0.1, le=60)

    # The key-encryption key that seals our private keys in the database (key_encryption.py):
    # the key itself or a file holding it; the previous one only during a rotation.
    key_encryption_key: SecretStr | None = None
    key_encryption_key_file: Path | None = None
    key_encryption_key_previous: SecretStr | None = None
    key_encryption_key_previous_file: Path | None = None

    # Tokens.
    public_url: str = "http://127.0.0.1:8080"
    issuer: str | None = None  # defaults to public_url
    audience: str = "auth-service"
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    token_max_length: int = Field(default=4096, ge=512, le=16_384)
    leeway_seconds: int = Field(default=10, ge=0, le=120)
    token_cache_max_entries: int = Field(default=100_000, ge=0, le=10_000_000)

    # HTTP.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65_535)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = tuple(
        ipaddress.ip_network(n) for n in DEFAULT_TRUSTED_PROXIES
    )
    # Validate refuses a longer forwarded URI (414) and longer Cookie headers (431) unread.
    max_forwarded_uri_length: int = Field(default=8192, ge=1024, le=1_048_576)
    max_cookie_header_length: int = Field(default=16_384, ge=4096, le=1_048_576)

    # Sessions: refresh tokens and how replicas learn about revocations and new keys.
    refresh_idle_ttl_seconds: int = Field(default=7 * 86_400, ge=60, le=365 * 86_400)
    refresh_absolute_ttl_seconds: int = Field(default=30 * 86_400, ge=300, le=365 * 86_400)
    sync_interval_seconds: float = Field(default=5.0, ge=0.5, le=300)

    # Browsers: the session cookie and where the login page may send them back to.
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86_400)
    cookie_name: str = Field(default="auth_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_secure: bool = True
    cookie_domain: str | None = None
    allowed_redirect_domains: Annotated[tuple[str, ...], NoDecode] = ()

    # The optional TOML file with external issuers and access rules.
    config: Path | None = None
    jwks_refresh_seconds: float = Field(default=300.0, ge=5, le=86_400)
    jwks_cooldown_seconds: float = Field(default=30.0, ge=0.1, le=3_600)

    # Who may read /metrics (CIDRs, comma-separated); empty: everyone who reaches the port.
    metrics_allow: Annotated[tuple[IPNetwork, ...], NoDecode] = ()

    # Interactive API documentation (Swagger UI) at /docs; /openapi.json is always served.
    api_docs: bool = False

    # Login throttling (shared by all replicas through the database).
    throttle_account_failures: int = Field(default=10, ge=1, le=1000)
    throttle_address_failures: int = Field(default=100, ge=1, le=100_000)
    throttle_account_budget: int = Field(default=50, ge=1, le=100_000)
    throttle_window_seconds: int = Field(default=900, ge=10, le=86_400)
    throttle_lockout_seconds: int = Field(default=60, ge=1, le=86_400)
    throttle_max_lockout_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)

    # Logging.
    summary_interval_seconds: float = Field(default=60.0, ge=0, le=86_400)  # 0: no summaries
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = False

    # The OAuth authorization server (issue 15). Unset: on when the issuer can serve it.
    oauth_enabled: bool | None = None
    oauth_registration: Literal["open", "token", "closed"] = "open"
    oauth_registration_token: SecretStr | None = None  # the initial access token (token mode)
    oauth_register_per_address: int = Field(default=20, ge=1, le=100_000)  # per hour
    oauth_cimd: bool = True  # https client_ids: Client ID Metadata Documents
    oauth_cimd_allow_private: bool = False  # development: fetch from loopback/private addresses
    oauth_cimd_max_bytes: int = Field(default=5120, ge=512, le=65_536)
    oauth_cimd_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    # PEM CA certificates the document fetcher trusts instead of the system's (tests, a private
    # CA in development); unset: the system's trust store.
    oauth_cimd_ca_file: FilePath | None = None
    oauth_code_ttl_seconds: int = Field(default=60, ge=5, le=60)
    oauth_flow_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    oauth_access_token_ttl_seconds: int | None = Field(default=None, ge=30, le=86_400)
    # Private-use URI schemes a native client may redirect to (``cursor``); none by default.
    oauth_redirect_schemes: Annotated[tuple[str, ...], NoDecode] = ()

    # Password hashing runs in this many threads (default: one per two cores), each this many
    # nice levels below the process, so that a login flood cannot starve validate.
    password_hash_workers: int = Field(default_factory=_one_per_two_cores, ge=1, le=64)
    password_hash_nice: int = Field(default=10, ge=0, le=19)
    # After a hash that ran beside a busy event loop, its thread rests for the hash's time
    # times the loop's busy share times this (1: hashing at least half the time; 0: no rest).
    password_hash_yield: float = Field(default=1.0, ge=0, le=10)
    # Logins waiting for a hashing thread: at most this many, none longer than this; any
    # other login is refused at once with 503 and Retry-After.
    login_queue_size: int = Field(default=16, ge=0, le=10_000)
    login_queue_wait_seconds: float = Field(default=3.0, gt=0, le=60)

    # Stopping (SIGTERM): readiness answers 503 at once and the service keeps serving this
    # long, so that proxies stop sending it requests before it stops listening; then it
    # finishes the requests in flight, for at most shutdown_timeout_seconds.
    shutdown_delay_seconds: float = Field(default=2.0, ge=0, le=300)
    shutdown_timeout_seconds: int = Field(default=10, ge=1, le=300)

    @field_validator(
        "key_encryption_key",
        "key_encryption_key_file",
        "key_encryption_key_previous",
        "key_encryption_key_previous_file",
        "oauth_cimd_ca_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # ``AUTH_KEY_ENCRYPTION_KEY=`` (an empty Compose default, say) means "not set".
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            networks = []
            for item in value:
                try:
                    networks.append(ipaddress.ip_network(str(item), strict=False))
                except ValueError as e:
                    raise ValueError(f"not an IP network (CIDR): {item!r}") from e
            return tuple(networks)
        return value

    @field_validator("allowed_redirect_domains", mode="before")
    @classmethod
    def _parse_domains(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            domains = []
            for item in value:
                domain = str(item).strip().lower()
                if not _DOMAIN.fullmatch(domain):
                    raise ValueError(f"not a host name or a leading-dot domain: {item!r}")
                domains.append(domain)
            return tuple(domains)
        return value

    @field_validator("oauth_redirect_schemes", mode="before")
    @classmethod
    def _parse_schemes(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            schemes = tuple(str(item).strip().lower() for item in value)
            for scheme in schemes:
                if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or scheme in _WEB_SCHEMES:
                    raise ValueError(f"not a private-use URI scheme: {scheme!r}")
            return schemes
        return value

    @field_validator("oauth_registration_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("cookie_domain", mode="before")
    @classmethod
    def _check_cookie_domain(cls, value: object) -> object:
        if value in (None, ""):
            return None
        domain = str(value).strip().lower().lstrip(".")
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(f"not a domain name: {value!r}")
        return domain

    @field_validator("cookie_name")
    @classmethod
    def _unprefixed_cookie_name(cls, value: str) -> str:
        if value.lower().startswith(("__host-", "__secure-")):
            raise ValueError(
                "give the name without __Host- or __Secure-: the prefix is added when it applies"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _cookie_cap_fits_a_token(self) -> Settings:
        if self.max_cookie_header_length < self.token_max_length + 256:
            raise ValueError(
                "max_cookie_header_length must leave room for a session cookie of "
                f"token_max_length ({self.token_max_length}) characters"
            )
        return self

    @model_validator(mode="after")
    def _oauth_usable(self) -> Settings:
        if self.oauth_enabled and self.oauth_issuer_problem is not None:
            raise ValueError(
                f"AUTH_OAUTH_ENABLED is true but the issuer {self.token_issuer!r} "
                f"{self.oauth_issuer_problem}"
            )
        if self.oauth_registration == "token" and self.oauth_registration_token is None:
            raise ValueError("AUTH_OAUTH_REGISTRATION=token needs AUTH_OAUTH_REGISTRATION_TOKEN")
        return self

    @property
    def oauth_issuer_problem(self) -> str | None:
        """Why the issuer cannot be an OAuth authorization server's, or None.

        Clients compare it byte for byte with what they render (lower-case host, no default
        port, no trailing slash), so only the canonical spelling works; and every well-known
        document is served at the root, so it has no path.
        """
        problem = check_canonical(self.token_issuer, allow_path=False)
        return None if problem is None else f"cannot be an OAuth issuer: {problem}"

    @property
    def oauth_active(self) -> bool:
        """Whether the authorization server is served: explicitly on, or on by default when
        the issuer can serve it (``AUTH_OAUTH_ENABLED=false`` turns it off)."""
        if self.oauth_enabled is None:
            return self.oauth_issuer_problem is None
        return self.oauth_enabled

    @property
    def oauth_access_token_ttl(self) -> int:
        """The lifetime of OAuth access tokens: their own setting, else our tokens'."""
        return self.oauth_access_token_ttl_seconds or self.access_token_ttl_seconds

    @property
    def public_origin(self) -> str:
        """Scheme, host and port of ``public_url``."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def session_cookie_name(self) -> str:
        """The session cookie's name, with the strongest prefix browsers enforce for it.

        ``__Host-`` (Secure, no Domain, Path=/) means no other host, not even a sibling
        subdomain, can set or shadow it; ``__Secure-`` (a Domain cookie) means no plain-HTTP
        page can. Without Secure (development over plain HTTP) browsers refuse both
        prefixes, so the name is bare and those guarantees are gone.
        """
        return _cookie_prefix(self.cookie_secure, self.cookie_domain) + self.cookie_name

    @property
    def presession_cookie_name(self) -> str:
        """The pre-session cookie that CSRF tokens are bound to: host-only, so ``__Host-``
        whenever the cookie is Secure."""
        return _cookie_prefix(self.cookie_secure, None) + PRESESSION_COOKIE

    @property
    def token_issuer(self) -> str:
        """The ``iss`` of our tokens: AUTH_ISSUER, else the public URL."""
        return self.issuer or self.public_url
