"""The token and revocation endpoints of the authorization server (RFC 6749 §3.2, RFC 7009).

Forms read by ``bodies.read_form`` (8 KiB, each field at most once); the client authenticates
by the method it registered (``oauth/client_auth.py``); the grants are ``oauth/grants.py``.
Every refusal is rendered by ``errors.oauth_error_response``: RFC 6749's codes in our JSON
shape, 401 ``invalid_client`` with ``WWW-Authenticate: Basic``, never cached.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from .. import audit, users
from ..db import Connection
from ..logs import flow_id_var
from ..metrics import count_oauth
from ..oauth.client_auth import authenticate_client, read_client_credentials
from ..oauth.clients import Client
from ..oauth.errors import InvalidGrant, InvalidRequest, OAuthError, UnsupportedGrantType
from ..oauth.grants import (
    CodeReplay,
    OAuthGrant,
    exchange_code,
    refresh,
    revoke_refresh_token,
    revoke_session_of_client,
)
from ..oauth.metadata import OFFLINE_ACCESS
from ..runtime import Runtime
from ..tokens import issue_access_token, session_of_access_token
from .bodies import read_form
from .dependencies import RuntimeDep
from .errors import oauth_error_response
from .oauth_docs import REVOKE_BODY, REVOKE_RESPONSES, TOKEN_BODY, TOKEN_RESPONSES
from .schemas import NO_STORE

log = logging.getLogger(__name__)

router = APIRouter(tags=["oauth"])

TOKEN_FIELDS = {
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "resource",
    "scope",
}
REVOKE_FIELDS = {"token", "token_type_hint", "client_id", "client_secret"}


async def _form(request: Request, fields: set[str], endpoint: str) -> dict[str, str]:
    try:
        return await read_form(request, fields)
    except HTTPException:
        count_oauth(endpoint, "invalid_request")
        raise


async def _grant(runtime: Runtime, client: Client, form: dict[str, str]) -> OAuthGrant:
    grant_type = form.get("grant_type")
    async with runtime.pool.acquire() as conn:
        if grant_type == "authorization_code":
            result = await exchange_code(conn, client, form, runtime.lifetimes)
        elif grant_type == "refresh_token":
            try:
                result = await refresh(conn, client, form, runtime.lifetimes)
            except InvalidGrant as e:
                if e.revoked is not None:
                    runtime.revocations.add(*e.revoked)  # here at once; elsewhere by NOTIFY
                    await _audit(conn, "oauth_refresh_reused", client, None, None)
                raise
        elif grant_type is None:
            raise InvalidRequest("grant_type is required")
        else:
            raise UnsupportedGrantType("grant_type must be authorization_code or refresh_token")
        if isinstance(result, CodeReplay):
            flow_id_var.set(result.flow_id)
            if result.session_id is not None and result.held_until is not None:
                runtime.revocations.add(result.session_id, result.held_until)
            await _audit(conn, "oauth_code_reused", client, None, None)
            raise InvalidGrant(
                "the authorization code was used before: the tokens issued from it are revoked"
            )
    if result.flow_id is not None:
        flow_id_var.set(result.flow_id)
    return result


async def _audit(
    conn: Connection,
    event: str,
    client: Client,
    grant: OAuthGrant | None,
    username: str | None,
    outcome: str = "failure",
) -> None:
    detail: dict[str, Any] = {"client_id": client.client_id}
    if flow_id_var.get() is not None:
        detail["flow_id"] = flow_id_var.get()
    if grant is not None:
        detail.update(resource=grant.resource, scope=" ".join(grant.scopes))
    await audit.record_event(
        conn,
        event,
        outcome,
        username=username,
        detail=detail,
    )


@router.post(
    "/token",
    responses=TOKEN_RESPONSES,
    openapi_extra=TOKEN_BODY,
    summary="The token endpoint: code exchange and refresh (RFC 6749 §3.2)",
)
async def token(request: Request, runtime: RuntimeDep) -> Response:
    """An access token for a code or a refresh token, to an authenticated client."""
    form = await _form(request, TOKEN_FIELDS, "token")
    try:
        credentials = read_client_credentials(request.headers.get("authorization"), form)
        async with runtime.pool.acquire() as conn:
            client = await authenticate_client(conn, credentials, runtime.document_fetcher(conn))
        grant = await _grant(runtime, client, form)
        async with runtime.pool.acquire() as conn:
            user = await users.find_user_by_id(conn, grant.session.user_id)
            if user is None or user.disabled:
                raise InvalidGrant("the account is disabled")
            await _audit(conn, "oauth_token_issued", client, grant, user.username, "success")
    except OAuthError as e:
        return oauth_error_response(e, "token")
    scopes = tuple(s for s in grant.scopes if s != OFFLINE_ACCESS)
    access_token, lifetime = issue_access_token(
        runtime.keys,
        runtime.token_params,
        user,
        session_id=grant.session.session_id,
        scopes=scopes,
        ttl_seconds=runtime.settings.oauth_access_token_ttl,
        resource=grant.resource,
        client_id=client.client_id,
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(grant.scopes),
    }
    if "refresh_token" in client.grant_types:
        body["refresh_token"] = grant.session.refresh_token
    count_oauth("token", "ok")
    log.info(
        "oauth token issued",
        extra={
            "grant_type": form.get("grant_type"),
            "client_id": client.client_id,
            "resource": grant.resource,
            "sid": grant.session.session_id,
        },
    )
    return JSONResponse(body, headers=NO_STORE)


@router.post(
    "/revoke",
    responses=REVOKE_RESPONSES,
    openapi_extra=REVOKE_BODY,
    summary="Token revocation (RFC 7009)",
)
async def revoke(request: Request, runtime: RuntimeDep) -> Response:
    """End the session of a refresh or access token the client holds; 200 whatever the token
    was (RFC 7009 §2.2: an unknown token is not an error)."""
    form = await _form(request, REVOKE_FIELDS, "revoke")
    try:
        credentials = read_client_credentials(request.headers.get("authorization"), form)
        async with runtime.pool.acquire() as conn:
            client = await authenticate_client(conn, credentials, runtime.document_fetcher(conn))
            value = form.get("token")
            if not value:
                raise InvalidRequest("token is required")
            session_id = await revoke_refresh_token(conn, client, value, runtime.lifetimes)
            if session_id is None:
                sid = session_of_access_token(value, runtime.keys)
                if sid is not None and await revoke_session_of_client(
                    conn, client, sid, runtime.lifetimes
                ):
                    session_id = sid
            if session_id is not None:
                await _audit(conn, "oauth_token_revoked", client, None, None, "success")
    except OAuthError as e:
        return oauth_error_response(e, "revoke")
    count_oauth("revoke", "ok")
    return Response(status_code=200, headers=NO_STORE)
