"""Resources (RFC 8707): the servers behind the gate that OAuth access tokens are made for.

Two modes, decided by the configuration file:

- ``[[resources]]`` entries configured: only those are resources (an allow-list), each with
  its scopes and optionally the rules that guard it. A request belongs to the resource whose
  origin is its forwarded origin and whose path is the longest segment-wise prefix of its path
  (``/mcp`` covers ``/mcp`` and ``/mcp/x``, never ``/mcpx``).
- none configured: every protected host is a resource at its forwarded origin (and any
  https, or loopback http, URL may be named at /authorize: the person's consent names it),
  whose scopes are those the ``[[rules]]`` that can match that host require.

Pure: no I/O, no HTTP framework; validate, the metadata routes and the authorization server
all ask the same ``ResourceSet``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import ResourceConfig, RuleConfig
from ..policy import host_matches
from .urls import canonical_origin, canonical_url, https_or_loopback

METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource: its canonical URL split into origin and path ("" for the root)."""

    url: str
    origin: str
    path: str
    name: str | None
    scopes: tuple[str, ...]
    rules: tuple[str, ...] = ()

    @classmethod
    def at(
        cls,
        url: str,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        rules: Iterable[str] = (),
    ) -> Resource:
        """The resource identified by a canonical ``url`` (``ValueError`` if it is not)."""
        if canonical_url(url) != url:
            raise ValueError(f"not a canonical resource URL: {url!r}")
        parts = urlsplit(url)
        return cls(
            url, f"{parts.scheme}://{parts.netloc}", parts.path, name, tuple(scopes), tuple(rules)
        )

    def covers(self, proto: str, host: str, path: str) -> bool:
        """Whether a request for ``proto://host`` + ``path`` (validate's normalised path) is
        on this resource: same canonical origin, and the path equal to ours or below it."""
        if canonical_origin(proto, host) != self.origin:
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")

    @property
    def metadata_url(self) -> str:
        """Where its protected-resource metadata is served (RFC 9728 §3.1, path form)."""
        return self.origin + METADATA_PATH + self.path


class ResourceSet:
    """The resources in force, built from the configuration file once (and at each reload)."""

    def __init__(
        self, resources: Iterable[ResourceConfig] = (), rules: Iterable[RuleConfig] = ()
    ) -> None:
        self.resources = tuple(
            Resource.at(r.url, name=r.name, scopes=r.scopes, rules=r.rules) for r in resources
        )
        self.configured = bool(self.resources)
        self._by_url = {r.url: r for r in self.resources}
        # Longest path first, so that the first covering resource is the most specific.
        self._by_specificity = sorted(self.resources, key=lambda r: len(r.path), reverse=True)
        self._rules = tuple(rules)

    def covering(self, proto: str, host: str, path: str) -> Resource | None:
        """The resource a request belongs to, or None (not a resource, or malformed host)."""
        if self.configured:
            return next((r for r in self._by_specificity if r.covers(proto, host, path)), None)
        origin = canonical_origin(proto, host)
        if origin is None or not https_or_loopback(origin):
            return None
        return Resource(origin, origin, "", None, self.scopes_for_host(urlsplit(origin).netloc))

    def get(self, url: str) -> Resource | None:
        """The resource a client names by ``url`` (after canonicalisation), or None.

        Configured: one of the list. Unconfigured: any https or loopback-http URL.
        """
        canonical = canonical_url(url)
        if canonical is None or not https_or_loopback(canonical):
            return None
        if self.configured:
            return self._by_url.get(canonical)
        return Resource.at(canonical, scopes=self.scopes_for_host(urlsplit(canonical).netloc))

    def only(self) -> Resource | None:
        """The resource when exactly one is configured: the default ``resource``."""
        return self.resources[0] if len(self.resources) == 1 else None

    def scopes_for_host(self, host: str) -> tuple[str, ...]:
        """Unconfigured mode: the scopes rules that can match ``host`` require, sorted."""
        return tuple(
            sorted(
                {
                    s
                    for r in self._rules
                    if r.host is None or host_matches(r.host.lower(), host)
                    for s in r.scopes
                }
            )
        )

    def all_scopes(self) -> tuple[str, ...]:
        """Every scope a resource offers (configured) or a rule requires (unconfigured)."""
        if self.configured:
            return tuple(sorted({s for r in self.resources for s in r.scopes}))
        return tuple(sorted({s for r in self._rules for s in r.scopes}))
