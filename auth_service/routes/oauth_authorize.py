"""``/authorize``: the person's side of OAuth, in their browser (RFC 6749 §4.1, OAuth 2.1).

Order matters. The client and its exact redirect URI are established before anything is sent
there: until then a refusal is a page of ours with status 400 and no redirect (an unchecked
redirect URI would make us an open redirector). After that every refusal goes back to the
client as ``?error=...&state=...&iss=...``. A valid request becomes a flow bound to this
browser by the flow cookie; the person signs in on our form (``/login?rd=/authorize?flow_id=``)
and answers the consent page, whose form posts back here with a CSRF token, from our origin,
with the flow cookie, as the person who was shown the page.
"""

from __future__ import annotations

import itertools
import logging
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import audit
from ..logs import client_ip_var, flow_id_var, request_id_var
from ..metrics import count_oauth
from ..oauth.authorization import check_authorization_request, echoed_state, repeated
from ..oauth.client_auth import lookup_client
from ..oauth.clients import Client
from ..oauth.codes import issue_code
from ..oauth.consent import consent_covers, grant_consent
from ..oauth.errors import ConsentRequired, LoginRequired, OAuthError, UnknownClient
from ..oauth.flows import Flow, create_flow, finish_flow, load_flow, purge_stale, show_consent_to
from ..oauth.urls import redirect_uri_matches
from ..runtime import Runtime
from ..types import User
from .bodies import read_form
from .dependencies import RuntimeDep
from .form_guard import form_refusal
from .forms import FORM_REFUSALS, PAGE, SEE_OTHER, form_done
from .oauth_docs import AUTHORIZE_QUERY, CONSENT_BODY
from .oauth_pages import consent_page, flow_cookie_name, signed_in_user
from .pages import error_page

log = logging.getLogger(__name__)

router = APIRouter(tags=["oauth"], default_response_class=HTMLResponse)

CONSENT_FIELDS = {"flow_id", "csrf_token", "decision"}
# Every so many new flows, expired flows and codes and unused clients are deleted.
_PURGE_EVERY = 100
_flows = itertools.count(1)
_REDIRECT_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
_BAD_LINK = "This sign-in link is not valid: {}. Go back to the application and start again."


def _invalid_link(reason: str) -> Response:
    count_oauth("authorize", "invalid_request")
    return error_page(400, _BAD_LINK.format(reason), heading="This sign-in link is not valid")


def _back_to_client(runtime: Runtime, redirect_uri: str, values: dict[str, str | None]) -> Response:
    """302 to the client's redirect URI with ``values``, ``iss`` always (RFC 9207)."""
    query = {k: v for k, v in values.items() if v is not None}
    query["iss"] = runtime.settings.token_issuer
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(
        redirect_uri + separator + urlencode(query), status_code=302, headers=_REDIRECT_HEADERS
    )


def _refuse(runtime: Runtime, redirect_uri: str, state: str | None, error: OAuthError) -> Response:
    count_oauth("authorize", error.code.value)
    log.info("oauth authorize refused", extra={"error_type": error.code.value})
    return _back_to_client(
        runtime,
        redirect_uri,
        {"error": error.code.value, "error_description": error.description, "state": state},
    )


def _login_redirect(runtime: Runtime, flow: Flow) -> Response:
    count_oauth("authorize", "login")
    rd = "/authorize?flow_id=" + flow.id
    return RedirectResponse(
        runtime.settings.public_url + "/login?rd=" + quote(rd, safe=""),
        status_code=303,
        headers=_REDIRECT_HEADERS,
    )


async def _issue(runtime: Runtime, flow: Flow, user: User, *, remembered: bool) -> Response:
    """The code, back to the client; the flow is done."""
    async with runtime.pool.acquire() as conn:
        if not await finish_flow(conn, flow.id):
            return _invalid_link("it has been used already")
        code = await issue_code(conn, flow, user.id, runtime.settings.oauth_code_ttl_seconds)
        await audit.record_event(
            conn,
            "oauth_code_issued",
            "success",
            username=user.username,
            request_id=request_id_var.get(),
            client_addr=client_ip_var.get(),
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
    return _back_to_client(runtime, flow.redirect_uri, {"code": code, "state": flow.state})


async def _continue(
    request: Request, runtime: Runtime, flow: Flow, client: Client, user: User | None
) -> Response:
    """After a valid request (new or resumed): sign in, remembered consent, or the page."""
    if user is None:
        if "none" in flow.prompt:
            return await _refuse_flow(runtime, flow, LoginRequired("nobody is signed in"))
        return _login_redirect(runtime, flow)
    async with runtime.pool.acquire() as conn:
        covered = await consent_covers(conn, user.id, flow.client_id, flow.resource, flow.scopes)
        if covered and "consent" not in flow.prompt:
            remembered = True
        else:
            remembered = False
            if "none" in flow.prompt:
                return await _refuse_flow(runtime, flow, ConsentRequired("consent is needed"))
            await show_consent_to(conn, flow.id, user.id)
    if remembered:
        return await _issue(runtime, flow, user, remembered=True)
    count_oauth("authorize", "consent")
    log.info("oauth consent shown", extra={"client_id": flow.client_id})
    return consent_page(request, runtime, flow, client, user)


async def _refuse_flow(runtime: Runtime, flow: Flow, error: OAuthError) -> Response:
    async with runtime.pool.acquire() as conn:
        await finish_flow(conn, flow.id)
    return _refuse(runtime, flow.redirect_uri, flow.state, error)


async def _established_client(
    runtime: Runtime, params: list[tuple[str, str]]
) -> tuple[Client, str] | Response:
    """The client and redirect URI of a new request, or the 400 page (never a redirect)."""
    twice = repeated(params)
    query = dict(params)
    client_id, redirect_uri = query.get("client_id"), query.get("redirect_uri")
    if "client_id" in twice or not client_id:
        return _invalid_link("it names no application")
    try:
        async with runtime.pool.acquire() as conn:
            client = await lookup_client(conn, client_id, None)
    except UnknownClient:
        return _invalid_link("unknown application")
    if "redirect_uri" in twice or not redirect_uri:
        return _invalid_link("it names no address to return to")
    if not any(redirect_uri_matches(r, redirect_uri) for r in client.redirect_uris):
        return _invalid_link("the address to return to is not one the application registered")
    return client, redirect_uri


@router.get(
    "/authorize",
    responses={
        302: {"description": "back to the client: a code, or an error", **SEE_OTHER},
        303: {"description": "to the sign-in form, which returns here", **SEE_OTHER},
        200: {"description": "the consent page", **PAGE},
        400: {"description": "unknown client or redirect URI: a page, no redirect", **PAGE},
    },
    openapi_extra=AUTHORIZE_QUERY,
    summary="The authorization endpoint (RFC 6749 §3.1)",
)
async def authorize(request: Request, runtime: RuntimeDep) -> Response:
    """Start (or, with ``flow_id``, resume) an authorization request."""
    params = request.query_params.multi_items()
    if any(name == "flow_id" for name, _ in params):
        return await _resume(request, runtime, params)
    established = await _established_client(runtime, params)
    if isinstance(established, Response):
        return established
    client, redirect_uri = established
    try:
        authorization = check_authorization_request(params, client, redirect_uri, runtime.resources)
    except OAuthError as e:
        return _refuse(runtime, redirect_uri, echoed_state(params), e)
    async with runtime.pool.acquire() as conn:
        flow, browser_secret = await create_flow(
            conn, authorization, runtime.settings.oauth_flow_ttl_seconds
        )
        if next(_flows) % _PURGE_EVERY == 0:
            await purge_stale(conn)
    flow_id_var.set(flow.id)
    log.info(
        "oauth authorize",
        extra={
            "client_id": client.client_id,
            "resource": flow.resource,
            "scopes": " ".join(flow.scopes),
        },
    )
    response = await _continue(
        request, runtime, flow, client, await signed_in_user(request, runtime)
    )
    settings = runtime.settings
    response.set_cookie(
        flow_cookie_name(runtime),
        browser_secret,
        max_age=settings.oauth_flow_ttl_seconds,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


async def _resume(request: Request, runtime: Runtime, params: list[tuple[str, str]]) -> Response:
    if len(params) != 1:
        return _invalid_link("it mixes a pending request with a new one")
    flow_id = params[0][1]
    async with runtime.pool.acquire() as conn:
        flow = await load_flow(conn, flow_id, request.cookies.get(flow_cookie_name(runtime)))
        client = await _client_of(conn, flow)
    if flow is None or client is None:
        return _invalid_link("it has expired, was used, or was started in another browser")
    flow_id_var.set(flow.id)
    return await _continue(request, runtime, flow, client, await signed_in_user(request, runtime))


async def _client_of(conn: object, flow: Flow | None) -> Client | None:
    if flow is None:
        return None
    try:
        return await lookup_client(conn, flow.client_id, None)  # type: ignore[arg-type]
    except UnknownClient:
        return None


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
        return _login_redirect(runtime, flow)
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
                request_id=request_id_var.get(),
                client_addr=client_ip_var.get(),
                detail={
                    "flow_id": flow.id,
                    "client_id": flow.client_id,
                    "resource": flow.resource,
                    "scope": " ".join(flow.scopes),
                },
            )
        log.info("oauth consent granted", extra={"client_id": flow.client_id})
        response = await _issue(runtime, flow, user, remembered=False)
    elif decision == "deny":
        async with runtime.pool.acquire() as conn:
            if not await finish_flow(conn, flow.id):
                return _forbidden("This request was answered already.")
            await audit.record_event(
                conn,
                "oauth_consent_denied",
                "success",
                username=user.username,
                request_id=request_id_var.get(),
                client_addr=client_ip_var.get(),
                detail={"flow_id": flow.id, "client_id": flow.client_id, "resource": flow.resource},
            )
        count_oauth("consent", "denied")
        log.info("oauth consent denied", extra={"client_id": flow.client_id})
        response = _back_to_client(
            runtime,
            flow.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "the person denied the request",
                "state": flow.state,
            },
        )
    else:
        count_oauth("consent", "invalid_request")
        return error_page(400, "The answer must be Allow or Deny.")
    response.delete_cookie(
        flow_cookie_name(runtime),
        path="/",
        secure=runtime.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return form_done(response, runtime.settings)
