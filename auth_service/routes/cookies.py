"""The cookies that both the JSON API and the browser routes set: the device cookie of a
login and the browser's refresh token. Each is sent back to one path of ours only."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import Response

from ..devices import DEVICE_COOKIE, DEVICE_MAX_AGE_SECONDS
from ..sessions import SessionGrant
from ..settings import Settings

REFRESH_COOKIE = "auth_refresh"
REFRESH_PATH = "/api/v1/auth/refresh"


def set_device_cookie(settings: Settings, response: Response, token: str, route: str) -> None:
    """The device cookie, sent back only to the login at ``route`` (a path of ours) and only
    to our own host (no Domain): it lets an upstream see nothing, and no page use it."""
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=DEVICE_MAX_AGE_SECONDS,
        path=urlsplit(settings.public_url).path + route,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def set_refresh_cookie(settings: Settings, response: Response, grant: SessionGrant) -> None:
    """The browser's refresh token: only ever sent to the refresh endpoint."""
    response.set_cookie(
        REFRESH_COOKIE,
        grant.refresh_token,
        max_age=grant.refresh_expires_in,
        path=REFRESH_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(settings: Settings, response: Response) -> None:
    """Logout: the browser forgets its refresh token."""
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
