"""The bodies of the HTTP API as pydantic models: what FastAPI validates requests against,
and what ``/openapi.json`` says of every answer.

Unknown members of a request body are ignored (a client may send more than we read); every
string we read has a length cap, checked before anything else looks at it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ErrorCode

# RFC 6749 5.1: an answer that carries a token or a secret is never cached, by anyone.
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}

MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 1024
MAX_REFRESH_TOKEN_LENGTH = 256


class Credentials(BaseModel):
    """``POST /api/v1/auth/login``."""

    model_config = ConfigDict(extra="ignore")

    username: Annotated[str, Field(min_length=1, max_length=MAX_USERNAME_LENGTH)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class RefreshTokenBody(BaseModel):
    """``POST /api/v1/auth/refresh`` and ``/logout``: a refresh token of ours."""

    model_config = ConfigDict(extra="ignore")

    refresh_token: Annotated[str, Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)]


class Tokens(BaseModel):
    """A login's or a refresh's answer: an access token and the next refresh token."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str
    refresh_expires_in: int = Field(description="seconds the refresh token is valid")


class LoggedOut(BaseModel):
    """The session has ended."""

    status: Literal["logged_out"] = "logged_out"


class Error(BaseModel):
    """Every JSON refusal: a stable code, a sentence, and the request's id (left out only of
    the failed login's 401, the same bytes for every reason; ``X-Request-Id`` names it)."""

    error: ErrorCode
    error_description: str
    request_id: str | None = None


class Throttled(Error):
    """429 or 503 of a login: the seconds to wait, as in ``Retry-After``."""

    retry_after: int


class RuleDenied(Error):
    """403 of validate: the access rule that refused."""

    rule: str | None = None


class Live(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class Ready(BaseModel):
    """The database answers and keys are loaded (``ok``), or not; not ``ok`` either while the
    service stops (``draining``)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]
    draining: bool = False


class Serving(BaseModel):
    """Validate answers here (``ok``): keys are loaded and the service is not stopping."""

    status: Literal["ok", "unavailable"]
    draining: bool


class Health(Ready):
    """A summary for people and scripts."""

    version: str
    signing_kid: str | None = None
    token_cache_entries: int | None = None


class JWKS(BaseModel):
    """Our public signing keys (RFC 7517), each with ``kid``, ``alg`` and ``use``."""

    keys: list[dict[str, Any]]


def refusal(
    description: str,
    *,
    model: type[Error] = Error,
    headers: dict[str, str] | None = None,
    page: bool = False,
) -> dict[str, Any]:
    """One entry of a route's ``responses=``: our JSON error (``model``, one of
    ``REFUSAL_MODELS``), the response ``headers`` that matter, and, with ``page``, the HTML
    page a browser gets instead."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    }
    if page:
        content["text/html"] = {"schema": {"type": "string"}}
    answer: dict[str, Any] = {"description": description, "content": content}
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


# The models ``refusal`` refers to, added to the document's components (``openapi.py``).
REFUSAL_MODELS: tuple[type[Error], ...] = (Error, Throttled, RuleDenied)
