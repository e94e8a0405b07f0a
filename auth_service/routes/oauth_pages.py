"""The OAuth pages' shared parts: who is signed in, the flow cookie, the consent page, and
the ways a flow ends (a code or an error back to the client, the 400 page).

The consent page names the client (its name is the client's own claim: marked unverified),
the resource, the account, the host the browser will be sent back to (a warning when that is
this computer: MCP asks it), and each scope. Its form's CSP ``form-action`` names the
redirect URI's origin: Chromium applies ``form-action`` to the redirect that ends a form post,
so without it the Allow button's 302 to the client would be blocked.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import audit, users
from ..errors import CredentialError, ErrorCode
from ..metrics import count_oauth
from ..oauth.clients import Client
from ..oauth.codes import issue_code as new_code
from ..oauth.errors import OAuthError
from ..oauth.flows import FLOW_COOKIE, Flow, finish_flow
from ..oauth.metadata import OFFLINE_ACCESS
from ..oauth.urls import is_loopback_host
from ..runtime import Runtime
from ..types import User
from .errors import error_response
from .form_guard import form_token, with_presession
from .pages import error_page, origin_of, render, wants_html

log = logging.getLogger(__name__)

REDIRECT_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
BAD_LINK = "This sign-in link is not valid: {}. Go back to the application and start again."


def flow_cookie_name(runtime: Runtime) -> str:
    """``__Host-`` whenever the cookie is Secure: host-only, path /, not settable by a
    sibling subdomain."""
    return ("__Host-" if runtime.settings.cookie_secure else "") + FLOW_COOKIE


def set_flow_cookie(response: Response, runtime: Runtime, value: str) -> None:
    """Set the flow cookie to ``value`` (the browser's pending flows' secrets) for the flow
    lifetime; an empty value deletes it."""
    settings = runtime.settings
    if not value:
        response.delete_cookie(
            flow_cookie_name(runtime),
            path="/",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        return
    response.set_cookie(
        flow_cookie_name(runtime),
        value,
        max_age=settings.oauth_flow_ttl_seconds,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


async def signed_in_user(request: Request, runtime: Runtime) -> User | None:
    """The person signed in in this browser (a valid session cookie of ours, an enabled
    account), or None."""
    cookie = request.headers.get("cookie")
    if not cookie:
        return None
    try:
        entry, _ = await runtime.authenticator.authenticate([], [cookie.encode()])
    except CredentialError:
        return None
    if not entry.cookie_only or entry.user.issuer_value:
        return None
    async with runtime.pool.acquire() as conn:
        user = await users.find_user_by_id(conn, entry.user.user_id_value.decode())
    return user if user is not None and not user.disabled else None


def _form_target(redirect_uri: str) -> str:
    """The CSP source for the redirect URI: its origin, or ``scheme:`` for a private-use
    scheme (``cursor:``), which has no origin."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return origin_of(redirect_uri)
    return parts.scheme + ":"


def _scope_items(scopes: tuple[str, ...]) -> str:
    items = [
        "<li>stay connected (refresh)</li>"
        if s == OFFLINE_ACCESS
        else f"<li><code>{html.escape(s)}</code></li>"
        for s in scopes
    ]
    return "\n".join(items) or "<li>access as you</li>"


def consent_page(
    request: Request, runtime: Runtime, flow: Flow, client: Client, user: User
) -> Response:
    """Ask the person whether ``client`` may act as them on the flow's resource."""
    presession, token = form_token(request, runtime)
    redirect = urlsplit(flow.redirect_uri)
    host = redirect.hostname or redirect.scheme
    loopback = redirect.scheme == "http" and is_loopback_host(host)
    resource = runtime.resources.get(flow.resource)
    page = render(
        "Allow access?",
        "consent.html",
        {
            "client_name": client.client_name or client.client_id,
            "client_note": f"unverified name; id {client.client_id}"
            if client.kind == "registered"
            else f"from {urlsplit(client.client_id).hostname}",
            "resource_name": (resource.name if resource and resource.name else flow.resource),
            "resource": flow.resource,
            "username": user.username,
            "redirect_host": host,
            "flow_id": flow.id,
            "csrf_token": token,
        },
        markup={
            "scopes": _scope_items(flow.scopes),
            "redirect_warning": ": an application on this computer. Allow only if you just "
            "started it."
            if loopback
            else ".",
        },
        form_targets=[_form_target(flow.redirect_uri)],
    )
    page.headers["referrer-policy"] = "no-referrer"
    return with_presession(runtime, page, presession)


def invalid_link(request: Request, reason: str) -> Response:
    """The 400 for a request that names no client or redirect URI we can trust: a page (a
    client that prefers JSON gets our JSON error), never a redirect."""
    count_oauth("authorize", "invalid_request")
    text = BAD_LINK.format(reason)
    if not wants_html(request):
        return error_response(ErrorCode.INVALID_REQUEST, text, 400)
    return error_page(400, text, heading="This sign-in link is not valid")


def back_to_client(runtime: Runtime, redirect_uri: str, values: dict[str, str | None]) -> Response:
    """302 to the client's redirect URI with ``values``, ``iss`` always (RFC 9207)."""
    query = {k: v for k, v in values.items() if v is not None}
    query["iss"] = runtime.settings.token_issuer
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(
        redirect_uri + separator + urlencode(query), status_code=302, headers=REDIRECT_HEADERS
    )


def refuse(runtime: Runtime, redirect_uri: str, state: str | None, error: OAuthError) -> Response:
    """A refusal back to an established client (RFC 6749 §4.1.2.1), with ``state`` and
    ``iss``."""
    count_oauth("authorize", error.code.value)
    log.info("oauth authorize refused", extra={"error_type": error.code.value})
    return back_to_client(
        runtime,
        redirect_uri,
        {"error": error.code.value, "error_description": error.description, "state": state},
    )


def login_redirect(runtime: Runtime, flow: Flow) -> Response:
    """To the sign-in form, which sends the person back to the flow (a path on our host)."""
    count_oauth("authorize", "login")
    rd = "/authorize?flow_id=" + flow.id
    return RedirectResponse(
        runtime.settings.public_url + "/login?rd=" + quote(rd, safe=""),
        status_code=303,
        headers=REDIRECT_HEADERS,
    )


async def issue_code(
    request: Request, runtime: Runtime, flow: Flow, user: User, *, remembered: bool
) -> Response:
    """A code, back to the client; the flow is done (``remembered``: by a consent given
    before)."""
    async with runtime.pool.acquire() as conn:
        if not await finish_flow(conn, flow.id):
            return invalid_link(request, "it has been used already")
        code = await new_code(conn, flow, user.id, runtime.settings.oauth_code_ttl_seconds)
        await audit.record_event(
            conn,
            "oauth_code_issued",
            "success",
            username=user.username,
            detail={
                "flow_id": flow.id,
                "client_id": flow.client_id,
                "resource": flow.resource,
                "scope": " ".join(flow.scopes),
                "remembered_consent": remembered,
            },
        )
    count_oauth("authorize" if remembered else "consent", "code")
    log.info("oauth code issued", extra={"client_id": flow.client_id, "resource": flow.resource})
    return back_to_client(runtime, flow.redirect_uri, {"code": code, "state": flow.state})
