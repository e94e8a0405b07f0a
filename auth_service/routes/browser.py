"""The browser side: the login form, the session cookie, logout, and a small home page.

Forms carry a CSRF token bound to the browser's pre-session cookie (``csrf.py``), and a post
must also come from one of our own pages by what the browser says of it (``Origin``,
``Sec-Fetch-Site``). Every refusal is a page (``pages.py``) that keeps what the person typed,
except the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import CredentialError, LoginThrottled
from ..redirects import safe_redirect
from ..sessions import start_session
from ..settings import Settings
from ..tokens import issue_access_token
from .bodies import read_form
from .form_guard import LOGIN_REFUSALS, LOGOUT_REFUSALS, form_refusal, form_token, with_presession
from .login import set_device_cookie, verify_login
from .pages import error_page, message_html, origin_of, render, wants_html
from .sessions import REFRESH_COOKIE, REFRESH_PATH, end_session, set_refresh_cookie

_FORM_FIELDS = {"username", "password", "csrf_token", "rd"}
_UNREADABLE = "The form could not be read. Please try again."


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def _redirect_target(request: Request, rd: str | None) -> str:
    settings = _settings(request)
    return safe_redirect(
        rd,
        public_url=settings.public_url,
        allowed_domains=settings.allowed_redirect_domains,
        default=settings.public_url + "/",
    )


def _logout_target(request: Request, rd: str | None) -> str:
    if rd:
        return _redirect_target(request, rd)
    return _settings(request).public_url + "/login?" + urlencode({"logged_out": "1"})


def _login_form(
    request: Request,
    rd: str,
    *,
    message: str = "",
    error: bool = False,
    username: str = "",
    status: int = 200,
) -> Response:
    presession, token = form_token(request)
    page = render(
        "Sign in",
        "login.html",
        {"action": "/login", "csrf_token": token, "rd": rd, "username": username},
        markup={
            "message": message_html(message, error=error),
            "username_focus": "" if username else "autofocus",
            "password_focus": "autofocus" if username else "",
        },
        status=status,
        form_targets=[origin_of(_redirect_target(request, rd))],
    )
    return with_presession(request, page, presession)


def _logout_form(request: Request, rd: str, *, message: str = "", status: int = 200) -> Response:
    presession, token = form_token(request)
    page = render(
        "Sign out",
        "logout.html",
        {"action": "/logout", "csrf_token": token, "rd": rd},
        markup={"message": message_html(message, error=True)},
        status=status,
        form_targets=[origin_of(_logout_target(request, rd))],
    )
    return with_presession(request, page, presession)


def _query_rd(request: Request) -> str:
    """``rd`` from the query: printable ASCII (as a URL is), else a 400 rather than a guess."""
    rd = request.query_params.get("rd", "")
    if rd and not (rd.isascii() and rd.isprintable()):
        raise HTTPException(400, "rd must be a URL of printable ASCII characters")
    return rd[:2048]


async def login_page(request: Request) -> Response:
    """``GET /login``: the form, remembering where to go afterwards."""
    try:
        rd = _query_rd(request)
    except HTTPException:
        if not wants_html(request):
            raise
        return error_page(
            400,
            "The address to return to after signing in is not valid.",
            link=("/login", "Sign in"),
        )
    message = "You have signed out." if "logged_out" in request.query_params else ""
    return _login_form(request, rd, message=message)


async def login_submit(request: Request) -> Response:
    """``POST /login``: check CSRF and password, set the session cookie, 303 to ``rd``."""
    runtime = request.app.state.runtime
    try:
        form = await read_form(request, _FORM_FIELDS)
    except HTTPException as refusal:
        if not wants_html(request):
            raise
        return _login_form(request, "", message=_UNREADABLE, error=True, status=refusal.status_code)
    rd = form.get("rd", "")[:2048]
    username = form.get("username", "")[:128]
    refused = form_refusal(request, form)
    if refused:
        return _login_form(
            request,
            rd,
            message=LOGIN_REFUSALS[refused],
            error=True,
            username=username,
            status=403,
        )
    try:
        signed_in = await verify_login(request, username, form.get("password", ""))
    except LoginThrottled as refusal:
        page = _login_form(
            request,
            rd,
            message="Too many failed attempts. Please wait a few minutes and try again.",
            error=True,
            username=username,
            status=429,
        )
        page.headers["retry-after"] = str(refusal.retry_after)
        return page
    if signed_in is None:
        return _login_form(
            request,
            rd,
            message="Invalid username or password.",
            error=True,
            username=username,
            status=401,
        )
    settings = runtime.settings
    user = signed_in.user
    async with runtime.pool.acquire() as conn:
        grant = await start_session(
            conn, user.id, runtime.lifetimes, absolute=settings.session_ttl_seconds
        )
    token, lifetime = issue_access_token(
        runtime.keys,
        runtime.token_params,
        user,
        ttl_seconds=settings.session_ttl_seconds,
        session_id=grant.session_id,
        session_cookie=True,
    )
    response = RedirectResponse(_redirect_target(request, rd), status_code=303)
    response.set_cookie(
        settings.session_cookie_name, token, max_age=lifetime, **_session_cookie(settings)
    )
    set_refresh_cookie(runtime, response, grant)
    set_device_cookie(request, response, signed_in.device_token, "/login")
    return _form_done(response, settings)


async def logout_page(request: Request) -> Response:
    """``GET /logout``: a confirmation form (a link alone must not sign anyone out)."""
    return _logout_form(request, _query_rd(request))


async def logout_submit(request: Request) -> Response:
    """``POST /logout``: end the session, clear its cookies, then back to the login page."""
    try:
        form = await read_form(request, _FORM_FIELDS)
    except HTTPException as refusal:
        if not wants_html(request):
            raise
        return _logout_form(request, "", message=_UNREADABLE, status=refusal.status_code)
    rd = form.get("rd", "")[:2048]
    refused = form_refusal(request, form)
    if refused:
        return _logout_form(request, rd, message=LOGOUT_REFUSALS[refused], status=403)
    settings = _settings(request)
    await _end_cookie_session(request)
    response = RedirectResponse(_logout_target(request, rd), status_code=303)
    response.delete_cookie(settings.session_cookie_name, **_session_cookie(settings))
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return _form_done(response, settings)


def _session_cookie(settings: Settings) -> dict[str, Any]:
    """The session cookie's attributes: the same when it is set and when it is cleared."""
    return {
        "path": "/",
        "domain": settings.cookie_domain,
        "secure": settings.cookie_secure,
        "httponly": True,
        "samesite": "lax",
    }


def _form_done(response: Response, settings: Settings) -> Response:
    """A form was used: its pre-session ends (a new login starts a new one), and the answer
    is not to be cached."""
    response.delete_cookie(
        settings.presession_cookie_name,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    response.headers["cache-control"] = "no-store"
    return response


async def _end_cookie_session(request: Request) -> None:
    """Revoke the session behind the session cookie, if it is a valid one."""
    runtime = request.app.state.runtime
    cookie = request.headers.get("cookie")
    try:
        entry, _ = await runtime.authenticator.authenticate([], [cookie.encode()] if cookie else [])
    except CredentialError:
        return  # nothing to end: the cookie is cleared all the same
    if entry.session_id is not None:
        await end_session(request, entry.session_id, entry.user.username)


async def home(request: Request) -> Response:
    """``GET /``: who is signed in, with the way in or out."""
    runtime = request.app.state.runtime
    cookie = request.headers.get("cookie")
    try:
        entry, _ = await runtime.authenticator.authenticate([], [cookie.encode()] if cookie else [])
    except CredentialError:
        return render(
            "auth-service",
            "message.html",
            {"heading": "Not signed in", "text": "You are not signed in."},
            markup={"link": '<p><a href="/login">Sign in</a></p>'},
        )
    return render(
        "auth-service",
        "message.html",
        {"heading": "Signed in", "text": f"You are signed in as {entry.user.username}."},
        markup={"link": '<p><a href="/logout">Sign out</a></p>'},
    )
