"""The parameters of an authorization request (``GET /authorize``), checked in order.

The client and its redirect URI are established first (by the caller, with the database):
until then nothing may be sent to the redirect URI. Everything checked here comes after, and
each refusal is an ``OAuthError`` the caller sends back to the client as ``?error=``, with
``state`` and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .clients import Client
from .errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from .metadata import OFFLINE_ACCESS
from .resources import Resource, ResourceSet

MAX_STATE_LENGTH = 1024
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_PROMPTS = {"none", "login", "consent", "select_account"}


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A valid authorization request: what the flow remembers until the code."""

    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: Resource
    scopes: tuple[str, ...]  # resource scopes, then offline_access when asked for
    prompt: tuple[str, ...]


def repeated(params: Sequence[tuple[str, str]]) -> set[str]:
    """The names of parameters sent more than once (RFC 6749 §3.1: each at most once)."""
    seen: set[str] = set()
    twice: set[str] = set()
    for name, _ in params:
        (twice if name in seen else seen).add(name)
    return twice


def echoed_state(params: Sequence[tuple[str, str]]) -> str | None:
    """The ``state`` to send back on a refusal: the client's, if it is one we would keep."""
    values = [v for k, v in params if k == "state"]
    if len(values) == 1 and len(values[0]) <= MAX_STATE_LENGTH:
        return values[0]
    return None


def parse_scope(text: str | None) -> tuple[str, ...]:
    """Scope tokens in order, without repeats. Empty tokens are dropped: the MCP SDK sends
    ``" offline_access"`` when a resource lists no scopes."""
    return tuple(dict.fromkeys((text or "").split(" "))) if text and text.strip() else ()


def granted_scopes(requested: tuple[str, ...], resource: Resource) -> tuple[str, ...]:
    """The scopes a request asks of ``resource`` (all of them when it names none);
    ``InvalidScope`` for one the resource does not offer."""
    tokens = tuple(s for s in requested if s)
    unknown = [s for s in tokens if s not in resource.scopes and s != OFFLINE_ACCESS]
    if unknown:
        raise InvalidScope(f"scope not offered by this resource: {unknown[0][:60]}")
    wanted = [s for s in tokens if s != OFFLINE_ACCESS] or list(resource.scopes)
    return (*wanted, OFFLINE_ACCESS) if OFFLINE_ACCESS in tokens else tuple(wanted)


def requested_resource(value: str | None, resources: ResourceSet) -> Resource:
    """The resource a request names (RFC 8707), or the only one configured when it names
    none; ``InvalidTarget`` otherwise."""
    if value is None:
        only = resources.only()
        if only is None:
            raise InvalidTarget("resource is required: the URL of the server to access")
        return only
    found = resources.get(value)
    if found is None:
        raise InvalidTarget(
            "resource must be the https URL of a server this authorization server protects"
        )
    return found


def check_authorization_request(
    params: Sequence[tuple[str, str]], client: Client, redirect_uri: str, resources: ResourceSet
) -> AuthorizationRequest:
    """The request, for an established client and redirect URI; ``OAuthError`` otherwise."""
    twice = repeated(params)
    if twice:
        raise InvalidRequest(f"parameter repeated: {sorted(twice)[0][:40]}")
    query = dict(params)
    response_type = query.get("response_type")
    if response_type is None:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("the client did not register the authorization_code grant")
    challenge = query.get("code_challenge")
    if query.get("code_challenge_method") != "S256" or challenge is None:
        raise InvalidRequest("PKCE with S256 is required (code_challenge_method=S256)")
    if not _CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters (S256)")
    state = query.get("state")
    if state is not None and len(state) > MAX_STATE_LENGTH:
        raise InvalidRequest(f"state must be at most {MAX_STATE_LENGTH} characters")
    prompt = tuple(p for p in query.get("prompt", "").split(" ") if p)
    if not set(prompt) <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt must be none, or any of login, consent, select_account")
    resource = requested_resource(query.get("resource"), resources)
    scopes = granted_scopes(parse_scope(query.get("scope")), resource)
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        resource=resource,
        scopes=scopes,
        prompt=prompt,
    )
