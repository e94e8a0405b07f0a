"""The optional configuration file (``AUTH_CONFIG``, TOML): external issuers and access rules.

Read with the standard library's ``tomllib`` and validated with pydantic; any problem is a
``ConfigurationError`` whose message names the file, the key and what is wrong, for example
``auth.toml: rules[2].allow: Input should be 'anonymous', 'authenticated' or 'deny'``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError
from .globs import glob_problem
from .oauth.urls import check_canonical

# Public-key algorithms only: a MAC algorithm would let anyone holding the public key sign.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# What an issuer's settings may put into X-Auth-User and X-Auth-Groups: our own users' and
# groups' character sets (users.py), so that a prefix or a mapped name is safe in a header.
_PREFIX = r"^[A-Za-z0-9._@+:/-]{0,64}$"
_GROUP = r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$"


class IssuerConfig(_Strict):
    """A trusted external OpenID issuer whose access tokens we accept.

    Its users are not ours: validate names the issuer in ``X-Auth-Issuer``, and
    ``username_prefix``, ``groups_allowed`` and ``groups_map`` keep its names from passing
    for local ones (an issuer's ``alice`` in ``admins`` is not our alice, nor in our admins).
    """

    issuer: str = Field(pattern=r"^https?://[\x21-\x7e]+$")  # also sent in X-Auth-Issuer
    audience: str = Field(min_length=1)
    jwks_uri: str | None = Field(default=None, pattern=r"^https?://\S+$")
    username_claim: str = "sub"
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    # Put before the username claim in X-Auth-User (e.g. "corp:"); empty: the claim as is.
    username_prefix: str = Field(default="", pattern=_PREFIX)
    # When either is set, only the groups listed here (as they are) or mapped (renamed to
    # the value) pass; every other group of the issuer's tokens is dropped.
    groups_allowed: tuple[str, ...] = ()
    groups_map: dict[str, str] = Field(default_factory=dict)
    # RFC 9068: refuse tokens whose typ is not at+jwt (ID tokens say JWT, or nothing), for
    # issuers that mark their access tokens.
    require_access_token_type: bool = False

    @field_validator("groups_map")
    @classmethod
    def _mapped_to_group_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(v for v in value.values() if not re.fullmatch(_GROUP, v))
        if bad:
            raise ValueError(
                f"not a group name: {', '.join(map(repr, bad))} (letters, digits and ._:@/+-)"
            )
        return value

    def local_groups(self, groups: list[str]) -> tuple[str, ...]:
        """The issuer's groups as rules and upstreams see them, in order, without repeats."""
        if not self.groups_allowed and not self.groups_map:
            return tuple(dict.fromkeys(groups))
        allowed = set(self.groups_allowed)
        kept = (self.groups_map.get(g, g if g in allowed else None) for g in groups)
        return tuple(dict.fromkeys(g for g in kept if g is not None))

    @field_validator("algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"not allowed: {', '.join(refused)} (only {', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        if not value:
            raise ValueError("at least one algorithm is needed")
        return value


class RuleConfig(_Strict):
    """One access rule; the first rule that matches a request decides."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    host: str | None = Field(default=None, pattern=r"^(\*\.)?[A-Za-z0-9.-]+$")
    path: str = "/**"
    # false: the path matches in any case, for an upstream that serves /Admin as /admin.
    case_sensitive: bool = True
    methods: tuple[str, ...] | None = None
    allow: Literal["anonymous", "authenticated", "deny"] = "authenticated"
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()

    @field_validator("path")
    @classmethod
    def _usable_glob(cls, value: str) -> str:
        problem = glob_problem(value)
        if problem is not None:
            raise ValueError(f"{value!r} {problem}")
        return value

    @field_validator("methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        methods = tuple(m.upper() for m in value)
        if not methods or not all(m.isalpha() for m in methods):
            raise ValueError("methods must be HTTP method names, such as GET")
        return methods

    @model_validator(mode="after")
    def _consistent(self) -> RuleConfig:
        if self.allow != "authenticated" and (self.groups or self.scopes):
            raise ValueError(
                f"groups and scopes only apply to allow = 'authenticated' (rule {self.id})"
            )
        return self


# A scope token (RFC 6749 §3.3): printable ASCII but space, double quote and backslash.
_SCOPE = r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$"


class ResourceConfig(_Strict):
    """A resource OAuth access tokens may be made for (RFC 8707): an MCP server, say."""

    url: str = Field(max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    scopes: tuple[str, ...] = Field(min_length=1)
    rules: tuple[str, ...] = ()

    @field_validator("url")
    @classmethod
    def _canonical_url(cls, value: str) -> str:
        # Clients compare the resource as a string with what they called: one spelling only.
        problem = check_canonical(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if not re.fullmatch(_SCOPE, s)]
        if bad:
            raise ValueError(f"not a scope token: {', '.join(map(repr, bad))}")
        if "offline_access" in value:
            raise ValueError(
                "offline_access is not a resource scope (the authorization server adds it)"
            )
        if len(set(value)) != len(value):
            raise ValueError("each scope may appear only once")
        return value


class FileConfig(_Strict):
    """The whole file."""

    issuers: tuple[IssuerConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    resources: tuple[ResourceConfig, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> FileConfig:
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicates)}")
        names = [i.issuer for i in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may appear only once")
        self._check_resources()
        return self

    def _check_resources(self) -> None:
        urls = [r.url for r in self.resources]
        duplicates = sorted({u for u in urls if urls.count(u) > 1})
        if duplicates:
            raise ValueError(f"resource urls must be unique: {', '.join(duplicates)}")
        rules = {r.id: r for r in self.rules}
        for index, resource in enumerate(self.resources):
            for rule_id in resource.rules:
                rule = rules.get(rule_id)
                if rule is None:
                    raise ValueError(f"resources[{index}].rules: no rule has id {rule_id!r}")
                beyond = sorted(set(rule.scopes) - set(resource.scopes))
                if beyond:
                    raise ValueError(
                        f"resources[{index}].rules: rule {rule_id!r} requires "
                        f"{', '.join(beyond)}, which is not in the resource's scopes "
                        "(no client could ever get it)"
                    )


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_config(path: Path) -> FileConfig:
    """Read and validate ``path``; ``ConfigurationError`` naming file, key and problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot read: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{path}: not valid TOML: {e}") from e
    try:
        return FileConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise ConfigurationError(f"{path}: {problems}") from e
