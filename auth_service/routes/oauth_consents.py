"""Consent answered and reviewed: the consent page's Allow or Deny (``POST /authorize``), and
the consents page, with what a person allowed which application and Revoke.

The answer must carry our CSRF token, come from our origin, with the flow cookie of the browser
that started the flow, from the person who was shown the page, once.

Revoking forgets the consent and ends the sessions it led to (their tokens stop validating on
every replica); the next authorization asks again.
"""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import audit
from ..logs import flow_id_var
from ..metrics import count_oauth
from ..oauth.consent import grant_consent, list_consents, revoke_consent
from ..oauth.flows import cookie_removing, finish_flow, load_flow
from ..runtime import Runtime
from ..types import User
from .bodies import read_form
from .dependencies import RuntimeDep
from .form_guard import form_refusal, form_token, with_presession
from .forms import FORM_REFUSALS, PAGE, SEE_OTHER, form_done
from .oauth_docs import CONSENT_BODY, CONSENTS_REVOKE_BODY
from .oauth_pages import (
    back_to_client,
    flow_cookie_name,
    issue_code,
    login_redirect,
    set_flow_cookie,
    signed_in_user,
)
from .pages import error_page, message_html, render

router = APIRouter(tags=["oauth"], default_response_class=HTMLResponse)

CONSENT_FIELDS = {"flow_id", "csrf_token", "decision"}

REVOKE_FIELDS = {"csrf_token", "client_id", "resource"}

log = logging.getLogger(__name__)


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
    if not form.get("client_id") or not form.get("resource"):
        return error_page(400, "The form names no consent to revoke.")
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
                detail={"client_id": client_id, "resource": resource},
            )
    message = "Access revoked." if revoked else "There was nothing to revoke."
    return await _consents_page(request, runtime, user, message)


def _forbidden(text: str) -> Response:
    count_oauth("consent", "access_denied")
    return error_page(403, text, heading="This answer was not accepted")


@router.post(
    "/authorize",
    status_code=302,
    responses={
        302: {"description": "back to the client: a code, or access_denied", **SEE_OTHER},
        303: {"description": "signed out meanwhile: to the sign-in form", **SEE_OTHER},
        **FORM_REFUSALS,
    },
    openapi_extra=CONSENT_BODY,
    summary="The consent page's answer",
)
async def consent_answer(request: Request, runtime: RuntimeDep) -> Response:
    """Allow or deny, from the consent page: a code or ``access_denied`` to the client."""
    try:
        form = await read_form(request, CONSENT_FIELDS)
    except HTTPException as unreadable:
        count_oauth("consent", "invalid_request")
        return error_page(unreadable.status_code, "The answer could not be read.")
    if not form.get("flow_id") or form.get("decision") not in ("allow", "deny"):
        count_oauth("consent", "invalid_request")
        return error_page(400, "The answer must name the request and be Allow or Deny.")
    if form_refusal(request, runtime, form) is not None:
        return _forbidden("The page expired or did not come from this site. Start again.")
    async with runtime.pool.acquire() as conn:
        flow = await load_flow(
            conn, form.get("flow_id", ""), request.cookies.get(flow_cookie_name(runtime))
        )
    if flow is None:
        return _forbidden(
            "This request has expired, was answered already, or was started in another browser."
        )
    flow_id_var.set(flow.id)
    user = await signed_in_user(request, runtime)
    if user is None:
        return login_redirect(runtime, flow)
    if flow.user_id != user.id:
        return _forbidden("You are signed in as someone else than the page was shown to.")
    decision = form.get("decision")
    if decision == "allow":
        async with runtime.pool.acquire() as conn:
            await grant_consent(conn, user.id, flow.client_id, flow.resource, flow.scopes)
            await audit.record_event(
                conn,
                "oauth_consent_granted",
                "success",
                username=user.username,
                detail={
                    "flow_id": flow.id,
                    "client_id": flow.client_id,
                    "resource": flow.resource,
                    "scope": " ".join(flow.scopes),
                },
            )
        log.info("oauth consent granted", extra={"client_id": flow.client_id})
        response = await issue_code(request, runtime, flow, user, remembered=False)
    else:
        async with runtime.pool.acquire() as conn:
            if not await finish_flow(conn, flow.id):
                return _forbidden("This request was answered already.")
            await audit.record_event(
                conn,
                "oauth_consent_denied",
                "success",
                username=user.username,
                detail={"flow_id": flow.id, "client_id": flow.client_id, "resource": flow.resource},
            )
        count_oauth("consent", "denied")
        log.info("oauth consent denied", extra={"client_id": flow.client_id})
        response = back_to_client(
            runtime,
            flow.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "the person denied the request",
                "state": flow.state,
            },
        )
    # This flow's secret leaves the cookie. While the browser has other requests pending
    # (consent pages in other tabs), they keep theirs, and the pre-session their pages' CSRF
    # tokens are bound to stays; with the last one answered, both cookies go.
    remaining = cookie_removing(flow, request.cookies.get(flow_cookie_name(runtime)))
    set_flow_cookie(response, runtime, remaining)
    if not remaining:
        return form_done(response, runtime.settings)
    response.headers["cache-control"] = "no-store"
    return response
