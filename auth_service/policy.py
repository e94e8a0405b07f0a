"""Access rules: the first rule matching a request's host, canonical path and method decides.

Pure functions, no I/O. Paths are matched with the globs of ``globs.py`` (``*`` within one
segment, ``**`` across segments, ``/admin/**`` also matches ``/admin``), case-sensitively
unless the rule says otherwise. A rule that names GET also covers HEAD, which servers answer
as a GET without the body. No matching rule means "authenticated".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .config import RuleConfig
from .globs import Glob
from .types import Principal


class Access(StrEnum):
    """What a rule allows."""

    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule compiled for matching."""

    id: str
    allow: Access
    path: Glob
    host: str | None  # lower-case; a leading "*." means any subdomain
    methods: frozenset[str] | None
    groups: frozenset[str]
    scopes: frozenset[str]

    def matches(self, host: str, path: str, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.host is not None and not host_matches(self.host, host):
            return False
        return self.path.matches(path)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the policy for one request."""

    allowed: bool
    status: int  # 200, 401 or 403
    rule_id: str | None
    reason: str
    # A refusal for scopes the caller lacks: every scope the rule requires (the scopes an
    # OAuth client must ask for), empty for any other decision.
    required_scopes: frozenset[str] = frozenset()


def compile_rules(configs: Iterable[RuleConfig]) -> tuple[Rule, ...]:
    """Rules ready for ``decide``, in evaluation order."""
    return tuple(
        Rule(
            id=c.id,
            allow=Access(c.allow),
            path=Glob(c.path, case_sensitive=c.case_sensitive),
            host=c.host.lower() if c.host else None,
            methods=_methods(c.methods),
            groups=frozenset(c.groups),
            scopes=frozenset(c.scopes),
        )
        for c in configs
    )


def _methods(names: tuple[str, ...] | None) -> frozenset[str] | None:
    """The methods a rule covers: GET brings HEAD (a HEAD is a GET without the body, and
    must not escape a rule written for GET)."""
    if not names:
        return None
    methods = frozenset(names)
    return methods | {"HEAD"} if "GET" in methods else methods


def host_matches(rule_host: str, host: str) -> bool:
    """Whether a rule's ``host`` (``*.`` for any subdomain) names ``host`` (port ignored)."""
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    host = host.rstrip(".").lower()
    if rule_host.startswith("*."):
        return host.endswith(rule_host[1:]) and len(host) > len(rule_host) - 1
    return host == rule_host


def first_match(rules: tuple[Rule, ...], host: str, path: str, method: str) -> Rule | None:
    """The rule that decides for this request, if any."""
    for rule in rules:
        if rule.matches(host, path, method):
            return rule
    return None


def decide(identity: Principal | None, rule: Rule | None) -> Decision:
    """The decision for a request whose matching rule is ``rule`` (None: no rule matched)."""
    if rule is None:
        if identity is None:
            return Decision(False, 401, None, "authentication required")
        return Decision(True, 200, None, "authenticated")
    if rule.allow is Access.ANONYMOUS:
        return Decision(True, 200, rule.id, "anonymous access")
    if rule.allow is Access.DENY:
        return Decision(False, 403, rule.id, "denied by rule")
    if identity is None:
        return Decision(False, 401, rule.id, "authentication required")
    if rule.groups and rule.groups.isdisjoint(identity.groups):
        return Decision(False, 403, rule.id, "not in any of the required groups")
    if rule.scopes and not rule.scopes.issubset(identity.scopes):
        return Decision(False, 403, rule.id, "missing a required scope", rule.scopes)
    return Decision(True, 200, rule.id, "authenticated")
