"""The consents page: what a person allowed which application, and Revoke.

Revoking forgets the consent and ends the sessions it led to (their tokens stop validating on
every replica); the next authorization asks again.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import audit
from ..logs import client_ip_var, request_id_var
from ..oauth.consent import list_consents, revoke_consent
from ..runtime import Runtime
from ..types import User
from .bodies import read_form
from .dependencies import RuntimeDep
from .form_guard import form_refusal, form_token, with_presession
from .forms import FORM_REFUSALS, PAGE, SEE_OTHER
from .oauth_docs import CONSENTS_REVOKE_BODY
from .oauth_pages import signed_in_user
from .pages import error_page, message_html, render

router = APIRouter(tags=["oauth"], default_response_class=HTMLResponse)

REVOKE_FIELDS = {"csrf_token", "client_id", "resource"}


def _consents_html(rows: list[tuple[str, str, str, str, str]], token: str) -> str:
    if not rows:
        return "<p>You have not allowed any application.</p>"
    parts = ["<ul>"]
    for client_id, name, resource, scopes, granted in rows:
        parts.append(
            f"<li><strong>{html.escape(name)}</strong> on <code>{html.escape(resource)}</code>"
            f" ({html.escape(scopes) or 'no scopes'}; since {html.escape(granted)})"
            '<form method="post" action="/oauth/consents/revoke">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(token)}">'
            f'<input type="hidden" name="client_id" value="{html.escape(client_id)}">'
            f'<input type="hidden" name="resource" value="{html.escape(resource)}">'
            '<button type="submit">Revoke</button></form></li>'
        )
    parts.append("</ul>")
    return "".join(parts)


@router.get(
    "/oauth/consents",
    responses={200: {"description": "the applications you allowed"}, 303: SEE_OTHER},
    summary="The signed-in person's consents",
)
async def consents(request: Request, runtime: RuntimeDep) -> Response:
    """List the consents of the person signed in, each with a Revoke button."""
    user = await signed_in_user(request, runtime)
    if user is None:
        return RedirectResponse("/login?rd=%2Foauth%2Fconsents", status_code=303)
    return await _consents_page(request, runtime, user, "")


async def _consents_page(request: Request, runtime: Runtime, user: User, message: str) -> Response:
    async with runtime.pool.acquire() as conn:
        found = await list_consents(conn, user.id)
    presession, token = form_token(request, runtime)
    rows = [
        (
            c.client_id,
            c.client_name or c.client_id,
            c.resource,
            " ".join(c.scopes),
            c.granted_at.strftime("%Y-%m-%d"),
        )
        for c in found
    ]
    page = render(
        "Applications you allowed",
        "consents.html",
        {},
        markup={
            "message": message_html(message, error=False),
            "consents": _consents_html(rows, token),
        },
    )
    return with_presession(runtime, page, presession)


@router.post(
    "/oauth/consents/revoke",
    status_code=200,
    responses={200: {"description": "the list again", **PAGE}, **FORM_REFUSALS},
    openapi_extra=CONSENTS_REVOKE_BODY,
    summary="Revoke a consent, and the sessions it led to",
)
async def revoke(request: Request, runtime: RuntimeDep) -> Response:
    """Forget a consent and end the sessions of that client on that resource."""
    try:
        form = await read_form(request, REVOKE_FIELDS)
    except HTTPException as unreadable:
        return error_page(unreadable.status_code, "The form could not be read.")
    if form_refusal(request, runtime, form) is not None:
        return error_page(403, "The page expired or did not come from this site.")
    user = await signed_in_user(request, runtime)
    if user is None:
        return RedirectResponse("/login?rd=%2Foauth%2Fconsents", status_code=303)
    client_id, resource = form.get("client_id", ""), form.get("resource", "")
    async with runtime.pool.acquire() as conn:
        revoked = await revoke_consent(conn, user.id, client_id, resource, runtime.lifetimes)
        if revoked:
            await audit.record_event(
                conn,
                "oauth_consent_revoked",
                "success",
                username=user.username,
                request_id=request_id_var.get(),
                client_addr=client_ip_var.get(),
                detail={"client_id": client_id, "resource": resource},
            )
    message = "Access revoked." if revoked else "There was nothing to revoke."
    return await _consents_page(request, runtime, user, message)
