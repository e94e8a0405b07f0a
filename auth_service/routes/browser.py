"""The browser side: the login form, the session cookie, logout, and a small home page.

Forms carry a CSRF token bound to the browser's pre-session cookie (``csrf.py``), and a post
must also come from one of our own pages by what the browser says of it (``Origin``,
``Sec-Fetch-Site``). Every refusal is a page (``pages.py``) that keeps what the person typed,
except the password.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..devices import DEVICE_COOKIE
from ..errors import CredentialError, LoginOverloaded, LoginThrottled
from ..login import attempt_login, end_session
from ..logs import client_ip_var, flow_id_var
from ..runtime import Runtime
from ..sessions import start_session
from ..tokens import issue_access_token
from .bodies import read_form
from .cookies import clear_refresh_cookie, set_device_cookie, set_refresh_cookie
from .dependencies import RuntimeDep
from .form_guard import LOGIN_REFUSALS, LOGOUT_REFUSALS, form_refusal
from .forms import (
    BAD_RD,
    FORM_BODY,
    FORM_FIELDS,
    FORM_REFUSALS,
    PAGE,
    RD_QUERY,
    SEE_OTHER,
    UNREADABLE,
    form_done,
    login_form,
    logout_form,
    logout_target,
    query_rd,
    redirect_target,
    session_cookie,
)
from .pages import error_page, render, wants_html

router = APIRouter(tags=["browser"], default_response_class=HTMLResponse)

# Where /authorize sends a person to sign in comes back to (``oauth_authorize.py``).
FLOW_RESUME = "/authorize?flow_id="


@router.get(
    "/login",
    responses={200: {"description": "the sign-in form"}, **BAD_RD},
    openapi_extra=RD_QUERY,
)
async def login_page(request: Request, runtime: RuntimeDep) -> Response:
    """The sign-in form, remembering in ``rd`` where to go afterwards."""
    try:
        rd = query_rd(request)
    except HTTPException:
        if not wants_html(request):
            raise
        return error_page(
            400,
            "The address to return to after signing in is not valid.",
            link=("/login", "Sign in"),
        )
    message = "You have signed out." if "logged_out" in request.query_params else ""
    return login_form(request, runtime, rd, message=message)


@router.post(
    "/login",
    status_code=303,
    responses={
        303: {"description": "signed in: the session cookie, and on to rd", **SEE_OTHER},
        401: {"description": "wrong username or password: the form again", **PAGE},
        429: {
            "description": "too many failed attempts: the form again",
            "headers": {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
            },
            **PAGE,
        },
        503: {
            "description": "more logins than the service can check now: the form again",
            "headers": {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
            },
            **PAGE,
        },
        **FORM_REFUSALS,
    },
    openapi_extra=FORM_BODY,
)
async def login_submit(request: Request, runtime: RuntimeDep) -> Response:
    """Check the form's CSRF token and the password, set the session cookie, 303 to ``rd``."""
    try:
        form = await read_form(request, FORM_FIELDS)
    except HTTPException as unreadable:
        if not wants_html(request):
            raise
        return login_form(
            request, runtime, "", message=UNREADABLE, error=True, status=unreadable.status_code
        )
    rd = form.get("rd", "")[:2048]
    if rd.startswith(FLOW_RESUME):  # a sign-in within an OAuth flow: its lines say which
        flow_id_var.set(rd.removeprefix(FLOW_RESUME)[:64])
    username = form.get("username", "")[:128]
    refused = form_refusal(request, runtime, form)
    if refused:
        return login_form(
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
        page = login_form(
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
    except LoginOverloaded as overloaded:
        page = login_form(
            request,
            runtime,
            rd,
            message="Too many people are signing in right now. Please try again in a moment.",
            error=True,
            username=username,
            status=503,
        )
        page.headers["retry-after"] = str(overloaded.retry_after)
        return page
    if signed_in is None:
        return login_form(
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
    response = RedirectResponse(redirect_target(settings, rd), status_code=303)
    response.set_cookie(
        settings.session_cookie_name, token, max_age=lifetime, **session_cookie(settings)
    )
    set_refresh_cookie(settings, response, grant)
    set_device_cookie(settings, response, signed_in.device_token, "/login")
    return form_done(response, settings)


@router.get(
    "/logout",
    responses={200: {"description": "the sign-out form"}, **BAD_RD},
    openapi_extra=RD_QUERY,
)
async def logout_page(request: Request, runtime: RuntimeDep) -> Response:
    """A confirmation form (a link alone must not sign anyone out)."""
    return logout_form(request, runtime, query_rd(request))


@router.post(
    "/logout",
    status_code=303,
    responses={
        303: {"description": "signed out: cookies cleared, on to rd", **SEE_OTHER},
        **FORM_REFUSALS,
    },
    openapi_extra=FORM_BODY,
)
async def logout_submit(request: Request, runtime: RuntimeDep) -> Response:
    """End the session, clear its cookies, then back to the login page (or ``rd``)."""
    try:
        form = await read_form(request, FORM_FIELDS)
    except HTTPException as unreadable:
        if not wants_html(request):
            raise
        return logout_form(request, runtime, "", message=UNREADABLE, status=unreadable.status_code)
    rd = form.get("rd", "")[:2048]
    refused = form_refusal(request, runtime, form)
    if refused:
        return logout_form(request, runtime, rd, message=LOGOUT_REFUSALS[refused], status=403)
    settings = runtime.settings
    await _end_cookie_session(request, runtime)
    response = RedirectResponse(logout_target(settings, rd), status_code=303)
    response.delete_cookie(settings.session_cookie_name, **session_cookie(settings))
    clear_refresh_cookie(settings, response)
    return form_done(response, settings)


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
        markup={"link": _signed_in_links(runtime)},
    )


def _signed_in_links(runtime: Runtime) -> str:
    consents = (
        '<p><a href="/oauth/consents">Applications you allowed</a></p>'
        if runtime.settings.oauth_active
        else ""
    )
    return consents + '<p><a href="/logout">Sign out</a></p>'
