"""The optional configuration file (``AUTH_CONFIG``, TOML): external issuers and access rules.

Read with the standard library's ``tomllib`` and validated with pydantic; any problem is a
``ConfigurationError`` whose message names the file, the key and what is wrong, for example
``auth.toml: rules[2].allow: Input should be 'anonymous', 'authenticated' or 'deny'``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError
from .globs import glob_problem

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


class IssuerConfig(_Strict):
    """A trusted external OpenID issuer whose access tokens we accept."""

    issuer: str = Field(pattern=r"^https?://\S+$")
    audience: str = Field(min_length=1)
    jwks_uri: str | None = Field(default=None, pattern=r"^https?://\S+$")
    username_claim: str = "sub"
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS

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


class FileConfig(_Strict):
    """The whole file."""

    issuers: tuple[IssuerConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> FileConfig:
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicates)}")
        names = [i.issuer for i in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may appear only once")
        return self


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
