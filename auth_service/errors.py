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
    │   └── RefreshRefused           (sessions.py)
    └── LoginThrottled               (429 on the login endpoints)

Each refusal carries an ``ErrorCode`` that is logged, counted and sent in response bodies.
"""

from __future__ import annotations

from enum import StrEnum


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


class LoginThrottled(AuthServiceError):
    """Too many failed logins for this account or address: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after} s")
        self.retry_after = retry_after
