"""The exception tree of auth-service and the stable error codes of our responses.

::

    AuthServiceError
    ├── ConfigurationError
    │   └── SealedSecretUnreadable   (key_encryption.py: the wrong key-encryption key)
    ├── DatabaseError
    │   └── DatabaseUnavailable
    ├── UserError
    │   ├── UserNotFound
    │   ├── UserExists
    │   └── InvalidPassword
    ├── CredentialError              (401: "who are you?")
    │   ├── MissingCredential
    │   ├── MalformedCredential
    │   ├── TokenTooLong
    │   ├── InvalidToken
    │   │   └── MissingClaim
    │   ├── ExpiredToken
    │   ├── RevokedToken
    │   ├── WrongResource            (an OAuth token on another resource than its own)
    │   └── RefreshRefused           (sessions.py)
    ├── LoginThrottled               (429 on the login endpoints)
    └── LoginOverloaded              (503: the password-hashing queue is full)

Each refusal carries an ``ErrorCode`` that is logged, counted and sent in response bodies;
``error_body`` is the one place that body is built, for every route and for validate.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Machine-readable reasons; they appear in bodies, logs (``error_type``) and metrics."""

    MISSING_TOKEN = "missing_token"
    MALFORMED_HEADER = "malformed_header"
    TOKEN_TOO_LONG = "token_too_long"
    INVALID_TOKEN = "invalid_token"
    EXPIRED_TOKEN = "expired_token"
    REVOKED_TOKEN = "revoked_token"
    INVALID_GRANT = "invalid_grant"
    RULE_DENIED = "rule_denied"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REQUEST = "invalid_request"
    INTERNAL_ERROR = "internal_error"
    # What the HTTP layer answers for a request no route takes as it is.
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    FORBIDDEN = "forbidden"
    SERVICE_UNAVAILABLE = "service_unavailable"
    # OAuth 2.1 (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707, OpenID prompt=none):
    # the codes clients act on, raised as ``oauth.errors.OAuthError`` subclasses.
    INVALID_CLIENT = "invalid_client"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
    INVALID_SCOPE = "invalid_scope"
    INVALID_TARGET = "invalid_target"
    ACCESS_DENIED = "access_denied"
    INVALID_REDIRECT_URI = "invalid_redirect_uri"
    INVALID_CLIENT_METADATA = "invalid_client_metadata"
    LOGIN_REQUIRED = "login_required"
    CONSENT_REQUIRED = "consent_required"
    # The resource-server side: a token for another resource, scopes a rule needs.
    WRONG_RESOURCE = "wrong_resource"
    INSUFFICIENT_SCOPE = "insufficient_scope"


# The codes a refusal of validate can carry: its metrics pre-bind a child for each.
VALIDATE_CODES = (
    ErrorCode.MISSING_TOKEN,
    ErrorCode.MALFORMED_HEADER,
    ErrorCode.TOKEN_TOO_LONG,
    ErrorCode.INVALID_TOKEN,
    ErrorCode.EXPIRED_TOKEN,
    ErrorCode.REVOKED_TOKEN,
    ErrorCode.WRONG_RESOURCE,
    ErrorCode.INVALID_GRANT,
    ErrorCode.RULE_DENIED,
    ErrorCode.TOO_MANY_ATTEMPTS,
    ErrorCode.INVALID_CREDENTIALS,
    ErrorCode.INVALID_REQUEST,
    ErrorCode.INTERNAL_ERROR,
)


def error_body(
    code: ErrorCode, description: str, request_id: str | None, **extra: Any
) -> dict[str, Any]:
    """Our JSON error: ``{"error", "error_description", ..., "request_id"}``, with ``extra``
    members (``rule``, ``retry_after``) before the request id. A ``request_id`` of None is
    left out: only for an answer that must be the same bytes for every request (the failed
    login), whose ``X-Request-Id`` header still names the request."""
    body: dict[str, Any] = {"error": code.value, "error_description": description, **extra}
    if request_id is not None:
        body["request_id"] = request_id
    return body


class AuthServiceError(Exception):
    """Root of every error raised by auth-service."""


class ConfigurationError(AuthServiceError):
    """The configuration cannot be used."""


class SealedSecretUnreadable(ConfigurationError):
    """A secret in the database does not open with the configured key-encryption keys."""

    def __init__(self, what: str, sealed_with: str) -> None:
        super().__init__(
            f"cannot decrypt {what}: it was encrypted with key-encryption key {sealed_with}, "
            "which is neither AUTH_KEY_ENCRYPTION_KEY nor AUTH_KEY_ENCRYPTION_KEY_PREVIOUS "
            "(or the value was altered)"
        )
        self.what = what
        self.sealed_with = sealed_with


class DatabaseError(AuthServiceError):
    """A database operation failed."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached."""


class UserError(AuthServiceError):
    """A user-management request cannot be carried out."""


class UserNotFound(UserError):
    """No user has this name."""

    def __init__(self, username: str) -> None:
        super().__init__(f"no such user: {username}")
        self.username = username


class UserExists(UserError):
    """A user with this name already exists."""

    def __init__(self, username: str) -> None:
        super().__init__(f"user already exists: {username}")
        self.username = username


class InvalidPassword(UserError):
    """The password cannot be accepted (empty, too long, ...)."""


class CredentialError(AuthServiceError):
    """The request's credential does not identify anyone; answered with 401."""

    code: ErrorCode = ErrorCode.INVALID_TOKEN

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class MissingCredential(CredentialError):
    """No credential was sent."""

    code = ErrorCode.MISSING_TOKEN


class MalformedCredential(CredentialError):
    """The Authorization header is not a single well-formed Bearer credential."""

    code = ErrorCode.MALFORMED_HEADER


class TokenTooLong(CredentialError):
    """The token is longer than the configured cap; it was not decoded."""

    code = ErrorCode.TOKEN_TOO_LONG


class InvalidToken(CredentialError):
    """The token is not one of ours, or fails verification."""

    code = ErrorCode.INVALID_TOKEN


class MissingClaim(InvalidToken):
    """A required claim is absent or of the wrong type."""

    def __init__(self, claim: str) -> None:
        super().__init__(f"required claim missing or invalid: {claim}")
        self.claim = claim


class ExpiredToken(CredentialError):
    """The token's ``exp`` has passed."""

    code = ErrorCode.EXPIRED_TOKEN


class RevokedToken(CredentialError):
    """The token's session has ended (logout, reuse, disabled account, new password)."""

    code = ErrorCode.REVOKED_TOKEN


class WrongResource(CredentialError):
    """An OAuth access token sent to another server than the resource it was issued for
    (RFC 8707): a 401, so that the client gets a token for this one."""

    code = ErrorCode.WRONG_RESOURCE


class LoginThrottled(AuthServiceError):
    """Too many failed logins for this account or address: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginOverloaded(AuthServiceError):
    """More logins than the hashing threads can serve soon: try again in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many logins at once; try again in {retry_after} s")
        self.retry_after = retry_after
