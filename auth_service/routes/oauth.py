"""The authorization server's metadata (RFC 8414) and client registration (RFC 7591).

Thin: the decisions are in ``oauth/``. Every refusal is an ``OAuthError`` rendered by
``errors.oauth_error_response`` (our JSON error, whose ``error`` is the code of the RFCs),
counted in ``auth_oauth_requests_total`` and never cached. The registration body is read by
``bodies.read_json_object`` (16 KiB, a JSON object), not by a FastAPI model, whose 422 has no
RFC 7591 code. ``/token`` and ``/revoke`` are ``oauth_token.py``.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from .. import audit
from ..logs import client_ip_var
from ..metrics import count_oauth
from ..oauth.clients import insert_client
from ..oauth.errors import (
    AccessDenied,
    InvalidInitialAccessToken,
    OAuthError,
    RegistrationThrottled,
)
from ..oauth.metadata import server_metadata
from ..oauth.registration import check_registration, new_client
from ..runtime import Runtime
from .bodies import read_json_object
from .dependencies import RuntimeDep
from .errors import oauth_error_response
from .oauth_docs import (
    METADATA_RESPONSES,
    REGISTER_BODY,
    REGISTER_RESPONSES,
)
from .schemas import NO_STORE

log = logging.getLogger(__name__)

router = APIRouter(tags=["oauth"])

MAX_REGISTRATION_BYTES = 16_384


@router.get(
    "/.well-known/oauth-authorization-server",
    responses=METADATA_RESPONSES,
    summary="Authorization-server metadata (RFC 8414)",
)
@router.get(
    "/.well-known/openid-configuration",
    responses=METADATA_RESPONSES,
    summary="The same document, where OpenID clients look",
)
async def authorization_server_metadata(runtime: RuntimeDep) -> Response:
    """Where our endpoints are and what they support; the same document at both URLs."""
    count_oauth("server_metadata", "ok")
    return JSONResponse(
        server_metadata(
            runtime.settings,
            runtime.resources,
            accepts_documents=runtime.accepts_client_documents,
        ),
        headers={"cache-control": "public, max-age=300", "access-control-allow-origin": "*"},
    )


async def _check_registration_allowed(request: Request, runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.oauth_registration == "closed":
        raise AccessDenied("client registration is closed")
    if settings.oauth_registration == "token":
        expected = settings.oauth_registration_token
        sent = request.headers.get("authorization", "")
        scheme, _, value = sent.partition(" ")
        if (
            expected is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(value.strip().encode(), expected.get_secret_value().encode())
        ):
            raise InvalidInitialAccessToken("registration needs the initial access token")


async def _throttle_registration(runtime: Runtime, address: str | None) -> None:
    """At most ``AUTH_OAUTH_REGISTER_PER_ADDRESS`` registrations an hour from one address."""
    if address is None:
        return
    async with runtime.pool.acquire() as conn:
        recent = await conn.fetchval(
            "SELECT count(*) FROM oauth_clients "
            "WHERE created_by_addr = $1 AND created_at > now() - interval '1 hour'",
            address,
        )
    if recent >= runtime.settings.oauth_register_per_address:
        raise RegistrationThrottled(3600)


@router.post(
    "/register",
    status_code=201,
    responses=REGISTER_RESPONSES,
    openapi_extra=REGISTER_BODY,
    summary="Dynamic client registration (RFC 7591)",
)
async def register(request: Request, runtime: RuntimeDep) -> Response:
    """Register a client; the secret (confidential clients) is in this answer only."""
    try:
        await _check_registration_allowed(request, runtime)
        try:
            body = await read_json_object(request, MAX_REGISTRATION_BYTES)
        except HTTPException:
            count_oauth("register", "invalid_request")
            raise
        registration = check_registration(body, runtime.settings.oauth_redirect_schemes)
        address = client_ip_var.get()
        await _throttle_registration(runtime, address)
        client, answer = new_client(registration)
        async with runtime.pool.acquire() as conn:
            await insert_client(conn, client, created_by_addr=address)
            await audit.record_event(
                conn,
                "oauth_client_registered",
                "success",
                client_addr=address,
                detail={"client_id": client.client_id, "client_name": client.client_name},
            )
    except OAuthError as e:
        return oauth_error_response(e, "register")
    count_oauth("register", "ok")
    log.info("oauth client registered", extra={"client_id": client.client_id})
    return JSONResponse(answer, status_code=201, headers=NO_STORE)
