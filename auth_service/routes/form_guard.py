"""Is a posted form one of ours? The pre-session cookie, the CSRF token, the browser's word.

A form page gets the browser's pre-session cookie (kept when it has one) and a token bound
to it (``csrf.py``). A post passes when the token is ours for the pre-session cookie it came
with, and the browser says it comes from a page of our own origin.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..csrf import (
    CSRF_MAX_AGE_SECONDS,
    check_csrf_token,
    is_presession,
    issue_csrf_token,
    new_presession,
)
from ..runtime import Runtime

EXPIRED, NO_COOKIE = "expired", "no cookie"
LOGIN_REFUSALS = {
    EXPIRED: "The form expired. Please sign in again.",
    NO_COOKIE: "Your browser did not send our cookie back. Please allow cookies for this "
    "site and sign in again.",
}
LOGOUT_REFUSALS = {
    EXPIRED: "The form expired. Please press Sign out again.",
    NO_COOKIE: "Your browser did not send our cookie back. Please allow cookies for this "
    "site and press Sign out again.",
}


def form_token(request: Request, runtime: Runtime) -> tuple[str, str]:
    """For a form page: the browser's pre-session id (the one its cookie holds, else a new
    one) and a fresh CSRF token bound to it."""
    current = request.cookies.get(runtime.settings.presession_cookie_name)
    presession = current if current is not None and is_presession(current) else new_presession()
    return presession, issue_csrf_token(runtime.csrf_key, presession)


def with_presession(runtime: Runtime, response: Response, presession: str) -> Response:
    """(Re)set the pre-session cookie. ``Lax``: sent with our own form's post and with the
    redirect from an application to the login page, never with another site's post."""
    settings = runtime.settings
    response.set_cookie(
        settings.presession_cookie_name,
        presession,
        max_age=CSRF_MAX_AGE_SECONDS,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


def _from_our_page(request: Request, public_origin: str) -> bool:
    """Whether the browser says the post comes from a page of our own origin (defence in
    depth beside the token).

    ``Sec-Fetch-Site``, when sent, must be ``same-origin``. ``Origin`` may be absent (older
    browsers), our exact origin, or ``null``, which a browser sends for a same-origin post
    under a ``no-referrer`` policy (a proxy may add one): then only with ``Sec-Fetch-Site:
    same-origin``, since a sandboxed frame on another site sends ``null`` as well.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return site == "same-origin"
    return origin == public_origin


def form_refusal(request: Request, runtime: Runtime, form: dict[str, str]) -> str | None:
    """Why a posted form is refused (``EXPIRED``, ``NO_COOKIE``), or None when it is ours."""
    presession = request.cookies.get(runtime.settings.presession_cookie_name)
    if not _from_our_page(request, runtime.settings.public_origin):
        return EXPIRED
    if presession is None:
        return NO_COOKIE
    if not check_csrf_token(runtime.csrf_key, form.get("csrf_token"), presession):
        return EXPIRED
    return None
