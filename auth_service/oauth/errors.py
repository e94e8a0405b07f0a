"""The refusals of the authorization server, each with the OAuth error code clients act on.

::

    AuthServiceError
    └── OAuthError                      (.code, .description, .status, .redirectable)
        ├── InvalidRequest              400 invalid_request
        ├── InvalidClient               401 invalid_client (token, revoke)
        │   └── UnknownClient           no such client_id (/authorize: a 400 page, no redirect)
        │       └── InvalidClientDocument   a Client ID Metadata Document we cannot use
        ├── InvalidRedirectUri          400 invalid_redirect_uri (/register; /authorize: page)
        ├── InvalidClientMetadata       400 invalid_client_metadata (/register)
        ├── InvalidGrant                400 invalid_grant (code, verifier, refresh token)
        ├── UnauthorizedClient          400 unauthorized_client (grant not registered)
        ├── UnsupportedGrantType        400 unsupported_grant_type
        ├── UnsupportedResponseType     400 unsupported_response_type
        ├── InvalidScope                400 invalid_scope
        ├── InvalidTarget               400 invalid_target (RFC 8707 resource)
        ├── AccessDenied                403 access_denied (the person said no; closed registration)
        ├── LoginRequired               prompt=none without a session
        ├── ConsentRequired             prompt=none without a consent
        ├── InvalidInitialAccessToken   401 invalid_token (/register in token mode)
        └── RegistrationThrottled       429 too_many_attempts (.retry_after)

``redirectable``: whether, once /authorize has established the client and its redirect URI,
the refusal goes back to the client as ``?error=`` (RFC 6749 §4.1.2.1). Refusals about the
client or the redirect URI never do: sending them there would be an open redirect.
"""

from __future__ import annotations

from ..errors import AuthServiceError, ErrorCode


class OAuthError(AuthServiceError):
    """A request the authorization server refuses, with the code of the OAuth specifications."""

    code: ErrorCode = ErrorCode.INVALID_REQUEST
    status: int = 400
    redirectable: bool = True

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(OAuthError):
    """A parameter is missing, repeated or malformed."""


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2: 401 with ``WWW-Authenticate``)."""

    code = ErrorCode.INVALID_CLIENT
    status = 401
    redirectable = False


class UnknownClient(InvalidClient):
    """No client has this ``client_id``."""


class InvalidClientDocument(UnknownClient):
    """A ``client_id`` URL whose metadata document cannot be fetched or used."""


class InvalidRedirectUri(OAuthError):
    """A redirect URI that is not acceptable, or not one the client registered."""

    code = ErrorCode.INVALID_REDIRECT_URI
    redirectable = False


class InvalidClientMetadata(OAuthError):
    """Registration metadata we cannot accept (RFC 7591 §3.2.2)."""

    code = ErrorCode.INVALID_CLIENT_METADATA
    redirectable = False


class InvalidGrant(OAuthError):
    """The code or refresh token is unknown, used, expired, or bound to something else."""

    code = ErrorCode.INVALID_GRANT

    def __init__(self, description: str, revoked: tuple[str, float] | None = None) -> None:
        super().__init__(description)
        self.revoked = revoked  # (session id, held until) when this refusal revoked a session


class UnauthorizedClient(OAuthError):
    """The client did not register this grant type."""

    code = ErrorCode.UNAUTHORIZED_CLIENT


class UnsupportedGrantType(OAuthError):
    """A grant type we do not implement."""

    code = ErrorCode.UNSUPPORTED_GRANT_TYPE


class UnsupportedResponseType(OAuthError):
    """A ``response_type`` other than ``code``."""

    code = ErrorCode.UNSUPPORTED_RESPONSE_TYPE


class InvalidScope(OAuthError):
    """A scope the resource does not offer, or more than the grant holds."""

    code = ErrorCode.INVALID_SCOPE


class InvalidTarget(OAuthError):
    """A ``resource`` that is missing, malformed or not one of ours (RFC 8707)."""

    code = ErrorCode.INVALID_TARGET


class AccessDenied(OAuthError):
    """The person denied the request, or registration is closed."""

    code = ErrorCode.ACCESS_DENIED
    status = 403


class LoginRequired(OAuthError):
    """``prompt=none`` and nobody is signed in."""

    code = ErrorCode.LOGIN_REQUIRED


class ConsentRequired(OAuthError):
    """``prompt=none`` and no consent covers the request."""

    code = ErrorCode.CONSENT_REQUIRED


class InvalidInitialAccessToken(OAuthError):
    """Registration needs the initial access token, and this one is missing or wrong."""

    code = ErrorCode.INVALID_TOKEN
    status = 401
    redirectable = False


class RegistrationThrottled(OAuthError):
    """Too many registrations from this address: wait ``retry_after`` seconds."""

    code = ErrorCode.TOO_MANY_ATTEMPTS
    status = 429
    redirectable = False

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many registrations; try again in {retry_after} s")
        self.retry_after = retry_after
