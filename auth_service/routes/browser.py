"""The browser side: the login form, the session cookie, logout, and a small home page.

Forms carry a CSRF token bound to the browser's pre-session cookie (``csrf.py``), and a post
must also come from one of our own pages by what the browser says of it (``Origin``,
``Sec-Fetch-Site``). Every refusal is a page (``pages.py``) that keeps what the person typed,
except the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..devices import DEVICE_COOKIE
from ..errors import CredentialError, LoginThrottled
from ..login import attempt_login, end_session
from ..logs import client_ip_var
from ..redirects import safe_redirect
from ..runtime import Runtime
from ..sessions import start_session
from ..settings import Settings
from ..tokens import issue_access_token
from .bodies import read_form
from .cookies import clear_refresh_cookie, set_device_cookie, set_refresh_cookie
from .dependencies import RuntimeDep
from .form_guard import LOGIN_REFUSALS, LOGOUT_REFUSALS, form_refusal, form_token, with_presession
from .pages import error_page, message_html, origin_of, render, wants_html
from .schemas import refusal

_FORM_FIELDS = {"username", "password", "csrf_token", "rd"}
_UNREADABLE = "The form could not be read. Please try again."


router = APIRouter(tags=["browser"], default_response_class=HTMLResponse)


def _redirect_target(settings: Settings, rd: str | None) -> str:
    return safe_redirect(
        rd,
        public_url=settings.public_url,
        allowed_domains=settings.allowed_redirect_domains,
        default=settings.public_url + "/",
    )


def _logout_target(settings: Settings, rd: str | None) -> str:
    if rd:
        return _redirect_target(settings, rd)
    return settings.public_url + "/login?" + urlencode({"logged_out": "1"})


def _login_form(
    request: Request,
    runtime: Runtime,
    rd: str,
    *,
    message: str = "",
    error: bool = False,
    username: str = "",
    status: int = 200,
) -> Response:
    presession, token = form_token(request, runtime)
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
        form_targets=[origin_of(_redirect_target(runtime.settings, rd))],
    )
    return with_presession(runtime, page, presession)


def _logout_form(
    request: Request, runtime: Runtime, rd: str, *, message: str = "", status: int = 200
) -> Response:
    presession, token = form_token(request, runtime)
    page = render(
        "Sign out",
        "logout.html",
        {"action": "/logout", "csrf_token": token, "rd": rd},
        markup={"message": message_html(message, error=True)},
        status=status,
        form_targets=[origin_of(_logout_target(runtime.settings, rd))],
    )
    return with_presession(runtime, page, presession)


def _query_rd(request: Request) -> str:
    """``rd`` from the query: printable ASCII (as a URL is), else a 400 rather than a guess."""
    rd = request.query_params.get("rd", "")
    if rd and not (rd.isascii() and rd.isprintable()):
        raise HTTPException(400, "rd must be a URL of printable ASCII characters")
    return rd[:2048]


# What FastAPI cannot see of the forms, read by ``bodies.read_form`` (capped, strict): the
# request body and the pages every refusal of it can be.
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "pattern": "^[^\\x00-\\x08\\x0a-\\x1f]*$"}
                        for name in sorted(_FORM_FIELDS)
                    },
                    "maxProperties": 16,
                }
            }
        },
    }
}
_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}
_SEE_OTHER = {
    "headers": {
        "Location": {"description": "where the browser goes next", "schema": {"type": "string"}}
    }
}
_FORM_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: refusal("the form cannot be read", page=True),
    413: refusal("the form is larger than 8192 bytes", page=True),
    415: refusal("the form is not application/x-www-form-urlencoded", page=True),
    403: {
        "description": "the form is not ours (CSRF token, cookie, origin): the form again",
        **_PAGE,
    },
    503: refusal("the database is unavailable", page=True),
}
# ``rd`` is read by ``_query_rd`` (a 400 of ours, not FastAPI's 422): declared here.
_RD_QUERY: dict[str, Any] = {
    "parameters": [
        {
            "name": "rd",
            "in": "query",
            "required": False,
            "description": "where to go afterwards: a URL of printable ASCII characters",
            "schema": {"type": "string", "pattern": "^[ -~]*$"},
        }
    ]
}
_BAD_RD: dict[int | str, dict[str, Any]] = {
    400: refusal("rd is not a URL of printable ASCII characters", page=True)
}


@router.get(
    "/login",
    responses={200: {"description": "the sign-in form"}, **_BAD_RD},
    openapi_extra=_RD_QUERY,
)
async def login_page(request: Request, runtime: RuntimeDep) -> Response:
    """The sign-in form, remembering in ``rd`` where to go afterwards."""
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
    return _login_form(request, runtime, rd, message=message)


@router.post(
    "/login",
    status_code=303,
    responses={
        303: {"description": "signed in: the session cookie, and on to rd", **_SEE_OTHER},
        401: {"description": "wrong username or password: the form again", **_PAGE},
        429: {
            "description": "too many failed attempts: the form again",
            "headers": {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
            },
            **_PAGE,
        },
        **_FORM_REFUSALS,
    },
    openapi_extra=_FORM_BODY,
)
async def login_submit(request: Request, runtime: RuntimeDep) -> Response:
    """Check the form's CSRF token and the password, set the session cookie, 303 to ``rd``."""
    try:
        form = await read_form(request, _FORM_FIELDS)
    except HTTPException as unreadable:
        if not wants_html(request):
            raise
        return _login_form(
            request, runtime, "", message=_UNREADABLE, error=True, status=unreadable.status_code
        )
    rd = form.get("rd", "")[:2048]
    username = form.get("username", "")[:128]
    refused = form_refusal(request, runtime, form)
    if refused:
        return _login_form(
            request,
            runtime,
            rd,
            message=LOGIN_REFUSALS[refused],
            error=True,
            username=username,
            status=403,
        )
    try:
        signed_in = await attempt_login(
            runtime.pool,
            runtime.passwords,
            runtime.throttle,
            runtime.csrf_key,
            username,
            form.get("password", ""),
            client_ip=client_ip_var.get(),
            device_token=request.cookies.get(DEVICE_COOKIE),
        )
    except LoginThrottled as throttled:
        page = _login_form(
            request,
            runtime,
            rd,
            message="Too many failed attempts. Please wait a few minutes and try again.",
            error=True,
            username=username,
            status=429,
        )
        page.headers["retry-after"] = str(throttled.retry_after)
        return page
    if signed_in is None:
        return _login_form(
            request,
            runtime,
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
    response = RedirectResponse(_redirect_target(settings, rd), status_code=303)
    response.set_cookie(
        settings.session_cookie_name, token, max_age=lifetime, **_session_cookie(settings)
    )
    set_refresh_cookie(settings, response, grant)
    set_device_cookie(settings, response, signed_in.device_token, "/login")
    return _form_done(response, settings)


@router.get(
    "/logout",
    responses={200: {"description": "the sign-out form"}, **_BAD_RD},
    openapi_extra=_RD_QUERY,
)
async def logout_page(request: Request, runtime: RuntimeDep) -> Response:
    """A confirmation form (a link alone must not sign anyone out)."""
    return _logout_form(request, runtime, _query_rd(request))


@router.post(
    "/logout",
    status_code=303,
    responses={
        303: {"description": "signed out: cookies cleared, on to rd", **_SEE_OTHER},
        **_FORM_REFUSALS,
    },
    openapi_extra=_FORM_BODY,
)
async def logout_submit(request: Request, runtime: RuntimeDep) -> Response:
    """End the session, clear its cookies, then back to the login page (or ``rd``)."""
    try:
        form = await read_form(request, _FORM_FIELDS)
    except HTTPException as unreadable:
        if not wants_html(request):
            raise
        return _logout_form(
            request, runtime, "", message=_UNREADABLE, status=unreadable.status_code
        )
    rd = form.get("rd", "")[:2048]
    refused = form_refusal(request, runtime, form)
    if refused:
        return _logout_form(request, runtime, rd, message=LOGOUT_REFUSALS[refused], status=403)
    settings = runtime.settings
    await _end_cookie_session(request, runtime)
    response = RedirectResponse(_logout_target(settings, rd), status_code=303)
    response.delete_cookie(settings.session_cookie_name, **_session_cookie(settings))
    clear_refresh_cookie(settings, response)
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


async def _end_cookie_session(request: Request, runtime: Runtime) -> None:
    """Revoke the session behind the session cookie, if it is a valid one."""
    cookie = request.headers.get("cookie")
    try:
        entry, _ = await runtime.authenticator.authenticate([], [cookie.encode()] if cookie else [])
    except CredentialError:
        return  # nothing to end: the cookie is cleared all the same
    if entry.session_id is not None:
        await end_session(
            runtime.pool,
            runtime.revocations,
            runtime.lifetimes,
            entry.session_id,
            entry.user.username,
            client_ip=client_ip_var.get(),
        )


@router.get("/", responses={200: {"description": "who is signed in"}})
async def home(request: Request, runtime: RuntimeDep) -> Response:
    """Who is signed in, with the way in or out."""
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
