"""The browser side: the login form, the session cookie, logout, and a small home page.

Pages are plain HTML from ``templates/`` (``string.Template``, every value escaped), served
with a strict Content-Security-Policy (a per-response nonce for the one inline style, no
scripts), ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``. Forms carry a signed
double-submit CSRF token (``csrf.py``).
"""

from __future__ import annotations

import html
import secrets
from functools import cache
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..csrf import CSRF_COOKIE, CSRF_MAX_AGE_SECONDS, check_csrf_token, issue_csrf_token
from ..errors import CredentialError, LoginThrottled
from ..redirects import safe_redirect
from ..sessions import start_session
from ..settings import Settings
from ..tokens import issue_access_token
from .bodies import read_form
from .login import verify_login
from .sessions import REFRESH_COOKIE, REFRESH_PATH, end_session, set_refresh_cookie

_FORM_FIELDS = {"username", "password", "csrf_token", "rd"}


@cache
def _template(name: str) -> Template:
    text = resources.files("auth_service").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def _csp(request: Request, nonce: str) -> str:
    runtime = request.app.state.runtime
    # The login form's post ends in a redirect to the original site: Chrome checks that
    # redirect against form-action, so the allowed redirect domains are listed too.
    targets = ["'self'"]
    for domain in runtime.settings.allowed_redirect_domains:
        targets += [f"*{domain}", domain[1:]] if domain.startswith(".") else [domain]
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; "
        f"form-action {' '.join(targets)}; frame-ancestors 'none'; base-uri 'none'"
    )


def render(
    request: Request,
    title: str,
    body: str,
    values: dict[str, str],
    *,
    markup: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A page: ``body`` filled with escaped ``values`` and our own trusted ``markup``."""
    nonce = secrets.token_urlsafe(16)
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    content = _template(body).substitute(escaped, **(markup or {}))
    page = _template("page.html").safe_substitute(
        title=html.escape(title), nonce=nonce, content=content
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={
            "content-security-policy": _csp(request, nonce),
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "cache-control": "no-store",
        },
    )


def _with_csrf_cookie(request: Request, response: Response, token: str) -> Response:
    settings = request.app.state.runtime.settings
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=CSRF_MAX_AGE_SECONDS,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


def _login_form(
    request: Request,
    rd: str,
    *,
    message: str = "",
    error: bool = False,
    username: str = "",
    status: int = 200,
) -> Response:
    runtime = request.app.state.runtime
    token = issue_csrf_token(runtime.csrf_key)
    notice = ""
    if message:
        kind = "error" if error else "info"
        role = "alert" if error else "status"
        notice = f'<p class="message {kind}" role="{role}">{html.escape(message)}</p>'
    page = render(
        request,
        "Sign in",
        "login.html",
        {"action": "/login", "csrf_token": token, "rd": rd, "username": username},
        markup={
            "message": notice,
            "username_focus": "" if username else "autofocus",
            "password_focus": "autofocus" if username else "",
        },
        status=status,
    )
    return _with_csrf_cookie(request, page, token)


def _same_origin(request: Request) -> bool:
    """A browser's Origin, when sent, must be ours (defence in depth beside the token)."""
    origin = request.headers.get("origin")
    return origin is None or origin == request.app.state.runtime.settings.public_origin


def _redirect_target(request: Request, rd: str | None) -> str:
    settings = request.app.state.runtime.settings
    return safe_redirect(
        rd,
        public_url=settings.public_url,
        allowed_domains=settings.allowed_redirect_domains,
        default=settings.public_url + "/",
    )


def _query_rd(request: Request) -> str:
    """``rd`` from the query: printable ASCII (as a URL is), else a 400 rather than a guess."""
    rd = request.query_params.get("rd", "")
    if rd and not (rd.isascii() and rd.isprintable()):
        raise HTTPException(400, "rd must be a URL of printable ASCII characters")
    return rd


async def login_page(request: Request) -> Response:
    """``GET /login``: the form, remembering where to go afterwards."""
    rd = _query_rd(request)
    message = "You have signed out." if "logged_out" in request.query_params else ""
    return _login_form(request, rd[:2048], message=message)


async def login_submit(request: Request) -> Response:
    """``POST /login``: check CSRF and password, set the session cookie, 303 to ``rd``."""
    runtime = request.app.state.runtime
    form = await read_form(request, _FORM_FIELDS)
    rd = form.get("rd", "")[:2048]
    if not _same_origin(request) or not check_csrf_token(
        runtime.csrf_key, form.get("csrf_token"), request.cookies.get(CSRF_COOKIE)
    ):
        return _login_form(
            request,
            rd,
            message="The form expired. Please sign in again.",
            error=True,
            status=403,
        )
    username = form.get("username", "")[:128]
    try:
        user = await verify_login(request, username, form.get("password", ""))
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
    if user is None:
        return _login_form(
            request,
            rd,
            message="Invalid username or password.",
            error=True,
            username=username,
            status=401,
        )
    settings = runtime.settings
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
    )
    response = RedirectResponse(_redirect_target(request, rd), status_code=303)
    response.set_cookie(settings.cookie_name, token, max_age=lifetime, **_session_cookie(settings))
    set_refresh_cookie(runtime, response, grant)
    return _form_done(response, settings)


async def logout_page(request: Request) -> Response:
    """``GET /logout``: a confirmation form (a link alone must not sign anyone out)."""
    runtime = request.app.state.runtime
    token = issue_csrf_token(runtime.csrf_key)
    rd = _query_rd(request)[:2048]
    page = render(
        request, "Sign out", "logout.html", {"action": "/logout", "csrf_token": token, "rd": rd}
    )
    return _with_csrf_cookie(request, page, token)


async def logout_submit(request: Request) -> Response:
    """``POST /logout``: clear the session cookie, then back to the login page."""
    runtime = request.app.state.runtime
    form = await read_form(request, _FORM_FIELDS)
    if not _same_origin(request) or not check_csrf_token(
        runtime.csrf_key, form.get("csrf_token"), request.cookies.get(CSRF_COOKIE)
    ):
        raise HTTPException(403, "the form expired; open the sign-out page again")
    settings = runtime.settings
    await _end_cookie_session(request)
    rd = form.get("rd")
    target = (
        _redirect_target(request, rd)
        if rd
        else (settings.public_url + "/login?" + urlencode({"logged_out": "1"}))
    )
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(settings.cookie_name, **_session_cookie(settings))
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
    """A form was used: its CSRF cookie goes, and the answer is not to be cached."""
    response.delete_cookie(
        CSRF_COOKIE, path="/", secure=settings.cookie_secure, httponly=True, samesite="strict"
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
            request,
            "auth-service",
            "message.html",
            {"heading": "Not signed in", "text": "You are not signed in."},
            markup={"link": '<p><a href="/login">Sign in</a></p>'},
        )
    return render(
        request,
        "auth-service",
        "message.html",
        {"heading": "Signed in", "text": f"You are signed in as {entry.user.username}."},
        markup={"link": '<p><a href="/logout">Sign out</a></p>'},
    )
