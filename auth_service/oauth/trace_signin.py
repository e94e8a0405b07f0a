"""Becoming a client and getting a code: registration, /authorize with PKCE, and the person's
part (the sign-in form and the consent page), done through the pages as a browser would.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx

from .trace_flow import CLIENT_NAME, FlowState, StepFailed, error_of, json_object
from .trace_forms import Form, find_forms

__all__ = ["authorize", "login", "register"]

# What an operator changes when /authorize sends the client back with an error.
_AUTHORIZE_FIXES = {
    "invalid_target": "the resource must be one the server serves: a [[resources]] url, "
    "exactly as the resource metadata names it",
    "invalid_scope": "the resource's scopes_supported must list what clients ask for",
    "unauthorized_client": "the client must register the authorization_code grant",
    "invalid_request": "see error_description: a parameter clients send was refused",
}


async def register(flow: FlowState, checks: list[str]) -> None:
    body = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [flow.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }
    r = await flow.send("register", "POST", flow.server["registration_endpoint"], json=body)
    if r.status_code not in (200, 201):
        fixes = {
            401: "registration needs an initial access token (AUTH_OAUTH_REGISTRATION=token)",
            403: "registration is closed (AUTH_OAUTH_REGISTRATION=closed)",
            429: "too many registrations from this address: wait an hour",
        }
        raise StepFailed(
            f"registration answered {r.status_code}{error_of(r)}",
            fixes.get(r.status_code, "see the error above"),
        )
    doc = json_object(r, "the registration answer", "see the trace")
    client_id = doc.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise StepFailed("the registration answer has no client_id", "see the trace")
    flow.remember(doc.get("client_secret"), doc.get("registration_access_token"))
    flow.client_id = client_id
    checks.append(f"{r.status_code}, client_id {client_id}")


async def authorize(flow: FlowState, checks: list[str]) -> None:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(flow.verifier.encode()).digest())
    scopes = list(flow.scopes)
    if "offline_access" in flow.server.get("scopes_supported", []):
        scopes.append("offline_access")  # as the MCP SDK asks, to get a refresh token
    params = {
        "response_type": "code",
        "client_id": flow.client_id or "",
        "redirect_uri": flow.redirect_uri,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
        "state": flow.state,
        "resource": flow.resource,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    flow.remember(flow.verifier)
    url = f"{flow.server['authorization_endpoint']}?{urlencode(params)}"
    r = await flow.send("authorize", "GET", url)
    location = r.headers.get("location", "")
    if r.status_code not in (302, 303) or not location:
        raise StepFailed(
            f"/authorize answered {r.status_code}, not a redirect to the sign-in form",
            "see the page in the trace: the client or its redirect URI was refused",
        )
    if location.startswith(flow.redirect_uri):
        query = dict(parse_qsl(urlsplit(location).query))
        error = query.get("error", "")
        raise StepFailed(
            f"/authorize sent the client back with error={error} "
            f"({query.get('error_description', '')})",
            _AUTHORIZE_FIXES.get(error, "see error_description and the server's log"),
        )
    flow.next_url = urljoin(url, location)
    checks.append(f"PKCE S256, state, resource; {r.status_code} to {urlsplit(location).path}")


async def login(flow: FlowState, checks: list[str]) -> None:
    r = await flow.send("login", "GET", flow.next_url)
    form = _form(r, lambda f: "password" in f.field_types.values())
    if form is None:
        raise StepFailed(f"no sign-in form at {flow.next_url} ({r.status_code})", "see trace")
    values = {}
    for name, kind in form.field_types.items():
        if kind == "password":
            values[name] = flow.password
        elif kind in ("text", "email") and name in ("username", "login", "email"):
            values[name] = flow.username
    r = await _post_form(flow, "login", r, form, values)
    if r.status_code != 303:
        raise StepFailed(
            f"sign-in answered {r.status_code}{error_of(r)}, not 303",
            {
                403: "the form refused the post: AUTH_PUBLIC_URL must be the origin of the page",
                429: "sign-in is throttled for this account or address: wait",
            }.get(r.status_code, "check --username and --password (auth-service user show)"),
        )
    checks.append("signed in (CSRF token, Origin)")
    for _ in range(5):
        location = urljoin(str(r.request.url), r.headers.get("location", ""))
        if location.startswith(flow.redirect_uri):
            flow.callback = location
            return
        r = await flow.send("login", "GET", location)
        if r.status_code in (302, 303):
            continue
        form = _form(r, lambda f: f.has_button("decision", "allow"))
        if form is None:
            raise StepFailed(f"{location} answered {r.status_code}, no consent form", "trace")
        if CLIENT_NAME not in r.text:
            raise StepFailed("the consent page does not name the client", "see the page")
        checks.append("consent page names the client")
        r = await _post_form(flow, "login", r, form, {}, ("decision", "allow"))
        if r.status_code not in (302, 303):
            raise StepFailed(f"Allow answered {r.status_code}, not a redirect", "see trace")
        checks.append("Allow")
    raise StepFailed("too many redirects after sign-in", "see the trace")


def _form(response: httpx.Response, wanted: Any) -> Form | None:
    if response.status_code != 200:
        return None
    forms = [f for f in find_forms(response.text) if wanted(f)]
    return forms[0] if forms else None


async def _post_form(
    flow: FlowState,
    step: str,
    page: httpx.Response,
    form: Form,
    values: dict[str, str],
    button: tuple[str, str] | None = None,
) -> httpx.Response:
    for name, value in form.fields:
        if "csrf" in name or "token" in name:
            flow.remember(value)
    page_url = urlsplit(str(page.request.url))
    return await flow.send(
        step,
        "POST",
        urljoin(str(page.request.url), form.action or str(page.request.url)),
        content=form.submission(values, button),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"{page_url.scheme}://{page_url.netloc}",
        },
    )
