"""The sign-in and sign-out forms as pages, and what every answer to a posted form does:
where the browser goes next, the cookies a form leaves behind.

Each form carries a CSRF token bound to the browser's pre-session cookie
(``form_guard.py``); a refusal is the form again with a message, keeping what the person
typed except the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..redirects import safe_redirect
from ..runtime import Runtime
from ..settings import Settings
from .bodies import MAX_FORM_NAMES
from .form_guard import form_token, with_presession
from .pages import message_html, origin_of, render
from .schemas import refusal

FORM_FIELDS = {"username", "password", "csrf_token", "rd"}
UNREADABLE = "The form could not be read. Please try again."


def redirect_target(settings: Settings, rd: str | None) -> str:
    return safe_redirect(
        rd,
        public_url=settings.public_url,
        allowed_domains=settings.allowed_redirect_domains,
        default=settings.public_url + "/",
    )


def logout_target(settings: Settings, rd: str | None) -> str:
    if rd:
        return redirect_target(settings, rd)
    return settings.public_url + "/login?" + urlencode({"logged_out": "1"})


def login_form(
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
        form_targets=[origin_of(redirect_target(runtime.settings, rd))],
    )
    return with_presession(runtime, page, presession)


def logout_form(
    request: Request, runtime: Runtime, rd: str, *, message: str = "", status: int = 200
) -> Response:
    presession, token = form_token(request, runtime)
    page = render(
        "Sign out",
        "logout.html",
        {"action": "/logout", "csrf_token": token, "rd": rd},
        markup={"message": message_html(message, error=True)},
        status=status,
        form_targets=[origin_of(logout_target(runtime.settings, rd))],
    )
    return with_presession(runtime, page, presession)


def query_rd(request: Request) -> str:
    """``rd`` from the query: printable ASCII (as a URL is), else a 400 rather than a guess."""
    rd = request.query_params.get("rd", "")
    if rd and not (rd.isascii() and rd.isprintable()):
        raise HTTPException(400, "rd must be a URL of printable ASCII characters")
    return rd[:2048]


def session_cookie(settings: Settings) -> dict[str, Any]:
    """The session cookie's attributes: the same when it is set and when it is cleared."""
    return {
        "path": "/",
        "domain": settings.cookie_domain,
        "secure": settings.cookie_secure,
        "httponly": True,
        "samesite": "lax",
    }


def form_done(response: Response, settings: Settings) -> Response:
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


# What FastAPI cannot see of the forms, read by ``bodies.read_form`` (capped, strict): the
# request body and the pages every refusal of it can be.
FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "pattern": "^[^\\x00-\\x08\\x0a-\\x1f]*$"}
                        for name in sorted(FORM_FIELDS)
                    },
                    "maxProperties": MAX_FORM_NAMES,
                }
            }
        },
    }
}
PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}
SEE_OTHER = {
    "headers": {
        "Location": {"description": "where the browser goes next", "schema": {"type": "string"}}
    }
}
FORM_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: refusal("the form cannot be read", page=True),
    413: refusal("the form is larger than 8192 bytes", page=True),
    415: refusal("the form is not application/x-www-form-urlencoded", page=True),
    403: {
        "description": "the form is not ours (CSRF token, cookie, origin): the form again",
        **PAGE,
    },
    503: refusal("the database is unavailable", page=True),
}
# ``rd`` is read by ``query_rd`` (a 400 of ours, not FastAPI's 422): declared here.
RD_QUERY: dict[str, Any] = {
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
BAD_RD: dict[int | str, dict[str, Any]] = {
    400: refusal("rd is not a URL of printable ASCII characters", page=True)
}
