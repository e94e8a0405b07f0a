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

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from ..db import Connection
from ..logs import flow_id_var
from ..metrics import count_oauth
from ..oauth.authorization import check_authorization_request, echoed_state, repeated
from ..oauth.client_auth import DocumentFetcher, lookup_client
from ..oauth.clients import Client
from ..oauth.consent import consent_covers
from ..oauth.errors import (
    ConsentRequired,
    InvalidClientDocument,
    LoginRequired,
    OAuthError,
    UnknownClient,
)
from ..oauth.flows import (
    Flow,
    cookie_adding,
    create_flow,
    finish_flow,
    load_flow,
    purge_stale,
    show_consent_to,
)
from ..oauth.urls import redirect_uri_matches
from ..runtime import Runtime
from ..types import User
from .dependencies import RuntimeDep
from .forms import PAGE, SEE_OTHER
from .oauth_docs import AUTHORIZE_QUERY
from .oauth_pages import (
    consent_page,
    flow_cookie_name,
    invalid_link,
    issue_code,
    login_redirect,
    refuse,
    set_flow_cookie,
    signed_in_user,
)
from .schemas import refusal

log = logging.getLogger(__name__)

router = APIRouter(tags=["oauth"], default_response_class=HTMLResponse)

# Every so many new flows, expired flows and codes and unused clients are deleted.
_PURGE_EVERY = 100
_flows = itertools.count(1)


async def _continue(
    request: Request, runtime: Runtime, flow: Flow, client: Client, user: User | None
) -> Response:
    """After a valid request (new or resumed): sign in, remembered consent, or the page."""
    if user is None:
        if "none" in flow.prompt:
            return await _refuse_flow(runtime, flow, LoginRequired("nobody is signed in"))
        return login_redirect(runtime, flow)
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
        return await issue_code(request, runtime, flow, user, remembered=True)
    count_oauth("authorize", "consent")
    log.info("oauth consent shown", extra={"client_id": flow.client_id})
    return consent_page(request, runtime, flow, client, user)


async def _refuse_flow(runtime: Runtime, flow: Flow, error: OAuthError) -> Response:
    async with runtime.pool.acquire() as conn:
        await finish_flow(conn, flow.id)
    return refuse(runtime, flow.redirect_uri, flow.state, error)


async def _established_client(
    request: Request, runtime: Runtime, params: list[tuple[str, str]]
) -> tuple[Client, str] | Response:
    """The client and redirect URI of a new request, or the 400 page (never a redirect)."""
    twice = repeated(params)
    query = dict(params)
    client_id, redirect_uri = query.get("client_id"), query.get("redirect_uri")
    if "client_id" in twice or not client_id:
        return invalid_link(request, "it names no application")
    try:
        async with runtime.pool.acquire() as conn:
            client = await lookup_client(conn, client_id, runtime.document_fetcher(conn))
    except UnknownClient as e:
        if isinstance(e, InvalidClientDocument):
            # The person sees "unknown application"; the operator learns why here.
            log.info("oauth client metadata document refused", extra={"error": e.description})
        return invalid_link(request, "unknown application")
    if "redirect_uri" in twice or not redirect_uri:
        return invalid_link(request, "it names no address to return to")
    if not any(redirect_uri_matches(r, redirect_uri) for r in client.redirect_uris):
        return invalid_link(
            request, "the address to return to is not one the application registered"
        )
    return client, redirect_uri


@router.get(
    "/authorize",
    responses={
        302: {"description": "back to the client: a code, or an error", **SEE_OTHER},
        303: {"description": "to the sign-in form, which returns here", **SEE_OTHER},
        200: {"description": "the consent page", **PAGE},
        400: refusal(
            "unknown client or redirect URI: a page (JSON for a client that asks), no redirect",
            page=True,
        ),
    },
    openapi_extra=AUTHORIZE_QUERY,
    summary="The authorization endpoint (RFC 6749 §3.1)",
)
async def authorize(request: Request, runtime: RuntimeDep) -> Response:
    """Start (or, with ``flow_id``, resume) an authorization request."""
    params = request.query_params.multi_items()
    if any(name == "flow_id" for name, _ in params):
        return await _resume(request, runtime, params)
    established = await _established_client(request, runtime, params)
    if isinstance(established, Response):
        return established
    client, redirect_uri = established
    try:
        authorization = check_authorization_request(params, client, redirect_uri, runtime.resources)
    except OAuthError as e:
        return refuse(runtime, redirect_uri, echoed_state(params), e)
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
    if response.status_code == 302:
        # Back to the client at once (a remembered consent's code, or an error): the flow is
        # finished, and the browser's pending ones keep the cookie as it is.
        return response
    pending = request.cookies.get(flow_cookie_name(runtime))
    set_flow_cookie(response, runtime, cookie_adding(browser_secret, pending))
    return response


async def _resume(request: Request, runtime: Runtime, params: list[tuple[str, str]]) -> Response:
    if len(params) != 1:
        return invalid_link(request, "it mixes a pending request with a new one")
    flow_id = params[0][1]
    async with runtime.pool.acquire() as conn:
        flow = await load_flow(conn, flow_id, request.cookies.get(flow_cookie_name(runtime)))
        client = await _client_of(conn, flow, runtime.document_fetcher(conn))
    if flow is None or client is None:
        return invalid_link(request, "it has expired, was used, or was started in another browser")
    flow_id_var.set(flow.id)
    return await _continue(request, runtime, flow, client, await signed_in_user(request, runtime))


async def _client_of(
    conn: Connection, flow: Flow | None, documents: DocumentFetcher | None
) -> Client | None:
    if flow is None:
        return None
    try:
        return await lookup_client(conn, flow.client_id, documents)
    except UnknownClient:
        return None
