"""The OAuth pages' shared parts: who is signed in, the flow cookie, the consent page.

The consent page names the client (its name is the client's own claim: marked unverified),
the resource, the account, the host the browser will be sent back to (a warning when that is
this computer: MCP asks it), and each scope. Its form's CSP ``form-action`` names the
redirect URI's origin: Chromium applies ``form-action`` to the redirect that ends a form post,
so without it the Allow button's 302 to the client would be blocked.
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from .. import users
from ..errors import CredentialError
from ..oauth.clients import Client
from ..oauth.flows import FLOW_COOKIE, Flow
from ..oauth.metadata import OFFLINE_ACCESS
from ..oauth.urls import is_loopback_host
from ..runtime import Runtime
from ..types import User
from .form_guard import form_token, with_presession
from .pages import origin_of, render


def flow_cookie_name(runtime: Runtime) -> str:
    """``__Host-`` whenever the cookie is Secure: host-only, path /, not settable by a
    sibling subdomain."""
    return ("__Host-" if runtime.settings.cookie_secure else "") + FLOW_COOKIE


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
