"""From the code to a working, refreshed and finally revoked token: what the client does
after the redirect, and the request through the gate that shows the token is accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from .trace_discovery import INITIALIZE, MCP_HEADERS
from .trace_flow import FlowState, StepFailed, error_of, json_object, parse_challenge

__all__ = ["callback", "refresh", "resource_request", "revoke", "token"]


async def callback(flow: FlowState, checks: list[str]) -> None:
    query = dict(parse_qsl(urlsplit(flow.callback).query))
    if "error" in query:
        raise StepFailed(
            f"the client was sent error={query['error']} ({query.get('error_description', '')})",
            "see the trace",
        )
    flow.code = query.get("code", "")
    flow.remember(flow.code)
    if not flow.code:
        raise StepFailed("the redirect carries no code", "see the trace")
    checks.append("code")
    if query.get("state") != flow.state:
        raise StepFailed("state does not round-trip", "send state back unchanged")
    checks.append("state")
    advertised = flow.server.get("authorization_response_iss_parameter_supported") is True
    if (advertised or "iss" in query) and query.get("iss") != flow.issuer:
        raise StepFailed(
            f"iss {query.get('iss')!r} is not the issuer {flow.issuer!r}",
            "clients refuse the code: the issuer must be the same string everywhere",
        )
    checks.append("iss")


async def token(flow: FlowState, checks: list[str]) -> None:
    r = await flow.send(
        "token",
        "POST",
        flow.server["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": flow.redirect_uri,
            "client_id": flow.client_id or "",
            "code_verifier": flow.verifier,
            "resource": flow.resource,
        },
    )
    doc = _token_answer(flow, r, "the code exchange")
    checks.append(f"200, Bearer, expires_in {doc['expires_in']}")
    claims = _jwt_claims(flow.access_token)
    if claims is not None:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if flow.resource not in audiences:
            raise StepFailed(
                f"the access token's aud is {audience!r}, not the resource {flow.resource!r}",
                "the token endpoint must bind the token to the resource (RFC 8707)",
            )
        if claims.get("iss") != flow.issuer:
            raise StepFailed(f"the access token's iss is {claims.get('iss')!r}", "AUTH_ISSUER")
        checks.append("aud = resource, iss = issuer")
    if not flow.refresh_token:
        raise StepFailed("no refresh_token", "issue refresh tokens for the refresh_token grant")
    checks.append("refresh_token")


def _token_answer(flow: FlowState, r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code != 200:
        raise StepFailed(f"{what} answered {r.status_code}{error_of(r)}", "see the trace")
    doc = json_object(r, "the token answer", "see the trace")
    flow.remember(doc.get("access_token"), doc.get("refresh_token"), doc.get("id_token"))
    if not isinstance(doc.get("access_token"), str) or str(doc.get("token_type")).lower() != (
        "bearer"
    ):
        raise StepFailed("the answer lacks a Bearer access_token", "see the trace")
    if not isinstance(doc.get("expires_in"), int):
        raise StepFailed("the answer lacks expires_in: clients cannot tell when to refresh", "")
    flow.access_token = doc["access_token"]
    new_refresh = doc.get("refresh_token")
    flow.refresh_token = new_refresh if isinstance(new_refresh, str) else ""
    return doc


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified: for the report only, never for a decision."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


async def resource_request(flow: FlowState, checks: list[str]) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {flow.access_token}"}
    r = await flow.send(
        "resource_request", "POST", flow.server_url, json=INITIALIZE, headers=headers
    )
    if r.status_code in (401, 403):
        _, params = parse_challenge(r.headers.get("www-authenticate", ""))
        raise StepFailed(
            f"the gate refused the new token: {r.status_code} {params.get('error', '')}",
            "the token's resource must cover this URL; a 403 names the rule or scope missing",
        )
    checks.append(f"{r.status_code} from the server: the gate let the token through")


async def refresh(flow: FlowState, checks: list[str]) -> None:
    old = flow.refresh_token
    r = await flow.send(
        "refresh",
        "POST",
        flow.server["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": old,
            "client_id": flow.client_id or "",
            "resource": flow.resource,
        },
    )
    _token_answer(flow, r, "the refresh")
    if not flow.refresh_token or flow.refresh_token == old:
        raise StepFailed("the refresh token was not rotated", "OAuth 2.1 requires rotation")
    checks.append("200, new access token, refresh token rotated")


async def revoke(flow: FlowState, checks: list[str]) -> None:
    endpoint = flow.server.get("revocation_endpoint")
    if not isinstance(endpoint, str):
        checks.append("no revocation_endpoint: the refresh token stays valid")
        return
    r = await flow.send(
        "revoke",
        "POST",
        endpoint,
        data={
            "token": flow.refresh_token,
            "token_type_hint": "refresh_token",
            "client_id": flow.client_id or "",
        },
    )
    if r.status_code != 200:
        raise StepFailed(f"revocation answered {r.status_code}{error_of(r)}", "see the trace")
    checks.append("200")
    # RFC 7009 answers 200 for unknown tokens too: see that this one really stopped working.
    r = await flow.send(
        "revoke",
        "POST",
        flow.server["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": flow.refresh_token,
            "client_id": flow.client_id or "",
            "resource": flow.resource,
        },
    )
    if r.status_code == 200:
        raise StepFailed(
            "the revoked refresh token still refreshes", "revocation must end the grant"
        )
    try:
        code = r.json().get("error", "")
    except (ValueError, AttributeError):
        code = ""
    answer = f"{r.status_code} {code}" if isinstance(code, str) and code else str(r.status_code)
    checks.append(f"the revoked refresh token is refused ({answer})")
