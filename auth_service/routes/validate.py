"""``/api/v1/auth/validate`` as a plain ASGI callable: the proxy calls it on every request.

No routing, dependency injection or response models: one pass over the headers, the
authenticator (a synchronous cache look-up for a token seen before, a signature check
otherwise), identity headers built once per cached token, and pre-bound metric children.
The same domain functions serve it as any other route. What each step costs, and why the
rest is left as it is, is in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import challenges
from ..cache import IDENTITY_HEADERS, CachedIdentity
from ..errors import VALIDATE_CODES, CredentialError, ErrorCode, WrongResource, error_body
from ..forwarded import FORWARDED_HEADER_NAMES, UnsafePath, choose_request_id, read_forwarded
from ..logs import request_id_var
from ..metrics import CACHE_HIT, CACHE_MISS, VALIDATE_DURATION, VALIDATE_REQUESTS
from ..policy import Access, Decision, Rule, decide, first_match
from ..validation import prefers_html
from . import pages

if TYPE_CHECKING:
    from ..forwarded import ForwardedRequest
    from ..oauth.resources import Resource
    from ..runtime import Runtime

log = logging.getLogger("auth_service.validate")

_ALLOWED = VALIDATE_REQUESTS.labels("allowed", "ok")
_ANONYMOUS = VALIDATE_REQUESTS.labels("allowed", "anonymous")
_ERROR = VALIDATE_REQUESTS.labels("error", ErrorCode.INTERNAL_ERROR.value)
_UNAUTHORIZED = {
    code: VALIDATE_REQUESTS.labels("unauthorized", code.value) for code in VALIDATE_CODES
}
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
# What the header loop keeps, by the lower-case names the server gives us. The client's own
# headers, which the proxy passes on (exactly the list of Traefik's authRequestHeaders), and
# the ones a trusted proxy sets itself: the forwarded headers and its X-Request-Id, which a
# client must not be able to pass through (the proxy sets it, or we make our own).
CLIENT_HEADER_NAMES = frozenset({b"authorization", b"cookie", b"accept"})
PROXY_HEADER_NAMES = FORWARDED_HEADER_NAMES | {b"x-request-id"}
_AUTHORIZATION, _COOKIE, _FORWARDED, _ACCEPT, _REQUEST_ID = range(5)
_WANTED = {
    b"authorization": _AUTHORIZATION,
    b"cookie": _COOKIE,
    b"accept": _ACCEPT,
    b"x-request-id": _REQUEST_ID,
    **dict.fromkeys(FORWARDED_HEADER_NAMES, _FORWARDED),
}
# Accept only chooses between a redirect and a 401; browsers send some 100 bytes of it. A
# longer one is ignored (an API client's 401) rather than parsed.
_MAX_ACCEPT_LENGTH = 1024
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
# An anonymous 200 names nobody, in every identity header: a proxy that replaces only the
# headers present in our answer still replaces a client's own X-Auth-User with nothing.
_ANONYMOUS_IDENTITY = tuple((name, b"") for name in IDENTITY_HEADERS)
_EXTRACTION_CODES = {ErrorCode.MISSING_TOKEN, ErrorCode.MALFORMED_HEADER, ErrorCode.TOKEN_TOO_LONG}
_REDIRECT_METHODS = {"GET", "HEAD"}


async def validate_endpoint(runtime: Runtime, scope: Any, receive: Any, send: Any) -> None:
    """Answer one validate request: 200 with identity headers, 401/302, 403, 400, 414, 431,
    or 500."""
    started = perf_counter()
    authorization: list[bytes] = []
    cookies: list[bytes] = []
    cookie_length = 0
    forwarded: list[tuple[bytes, bytes]] = []
    accept: bytes | None = None
    proxy_request_id: bytes | None = None
    for name, value in scope["headers"]:
        wanted = _WANTED.get(name)  # one look-up for the many headers we do not read
        if wanted is None:
            continue
        if wanted == _AUTHORIZATION:
            authorization.append(value)
        elif wanted == _FORWARDED:
            forwarded.append((name, value))
        elif wanted == _COOKIE:
            cookies.append(value)
            cookie_length += len(value)
        elif wanted == _ACCEPT:
            accept = value if len(value) <= _MAX_ACCEPT_LENGTH else None
        else:
            proxy_request_id = value
    client = scope.get("client")
    request_id = choose_request_id(client, proxy_request_id, runtime.trusted_proxies)
    context = request_id_var.set(request_id)
    try:
        settings = runtime.settings
        policy = runtime.policy
        try:
            original = read_forwarded(
                forwarded, client, runtime.trusted_proxies, settings.max_forwarded_uri_length
            )
            if policy.names_hosts and not original.host:
                raise UnsafePath("no forwarded host, and access rules name hosts")
        except UnsafePath as unsafe:
            await _refuse(
                send,
                ErrorCode.INVALID_REQUEST,
                str(unsafe),
                request_id,
                unsafe.status,
                None,
                accept,
            )
            return
        if cookie_length > settings.max_cookie_header_length:
            # Refused before anything splits it: a browser carrying this much would be sent
            # round the login page for ever if the cookie were ignored instead.
            description = f"Cookie headers longer than {settings.max_cookie_header_length} bytes"
            await _refuse(
                send, ErrorCode.INVALID_REQUEST, description, request_id, 431, None, accept
            )
            return
        rule = (
            first_match(policy.rules, original.host, original.path, original.method)
            if policy.rules
            else None
        )
        authenticator = runtime.authenticator
        try:
            token, entry = authenticator.lookup(authorization, cookies)
            cached = entry is not None
            if entry is None:
                entry = await authenticator.verify(token, bearer=bool(authorization))
            # An OAuth access token works on its own resource only (RFC 8707), checked on
            # every request, cached or not: a token for one server is refused by another.
            if entry.resource is not None and not _on_resource(entry.resource, original):
                raise WrongResource("the token was issued for another resource (aud)")
        except CredentialError as refusal:
            if rule is not None and rule.allow is not Access.AUTHENTICATED:
                # Anonymous pages ignore a bad credential; denied ones refuse everybody.
                decision = decide(None, rule)
                await _by_rule(runtime, send, decision, None, request_id, original, accept)
                return
            await _unauthorized(runtime, send, refusal, request_id, original, accept, rule)
            return
        except Exception:
            _ERROR.inc()
            log.exception("validate failed", extra={"auth_stage": "token_validation"})
            body = _body(ErrorCode.INTERNAL_ERROR, "internal error", request_id)
            await _send(send, 500, [_JSON, _NO_STORE], request_id, body)
            return
        (CACHE_HIT if cached else CACHE_MISS).inc()
        if rule is not None:
            decision = decide(entry.user, rule)
            await _by_rule(runtime, send, decision, entry, request_id, original, accept)
            return
        _ALLOWED.inc()
        if log.isEnabledFor(logging.DEBUG):
            _log_decision("allowed", entry, cached, original)
        headers = entry.user.headers()
        headers.append(_NO_STORE)
        await _send(send, 200, headers, request_id, b"")
    finally:
        VALIDATE_DURATION.observe(perf_counter() - started)
        request_id_var.reset(context)


def _on_resource(resource: Resource, original: ForwardedRequest) -> bool:
    """Whether the request is on ``resource``: only a proxy can tell us where it goes."""
    return original.from_proxy and resource.covers(original.proto, original.host, original.path)


def _resource_of(runtime: Runtime, original: ForwardedRequest) -> Resource | None:
    """The OAuth resource the request is on, whose metadata a refusal names (None: OAuth
    is off, or no resource covers it). Looked up on refusals only."""
    resources = runtime.oauth_resources
    if resources is None or not original.from_proxy or not original.host:
        return None
    return resources.covering(original.proto, original.host, original.path)


def _log_decision(
    message: str,
    entry: CachedIdentity | None,
    cached: bool | None,
    original: ForwardedRequest,
    **extra: Any,
) -> None:
    log.debug(
        message,
        extra={
            "auth_stage": "policy",
            "user": entry.user.username if entry else None,
            "token_cache": None if cached is None else ("hit" if cached else "miss"),
            "method": original.method,
            "host": original.host,
            "path": original.path,
            "client_ip": original.client_ip,
            **extra,
        },
    )


async def _by_rule(
    runtime: Runtime,
    send: Any,
    decision: Decision,
    entry: CachedIdentity | None,
    request_id: str,
    original: ForwardedRequest,
    accept: bytes | None,
) -> None:
    """Answer as the matching access rule decided: 200 (with identity when known) or 403."""
    if log.isEnabledFor(logging.DEBUG):
        _log_decision(
            "allowed" if decision.allowed else "forbidden",
            entry,
            None,
            original,
            rule=decision.rule_id,
            reason=decision.reason,
            **({} if decision.allowed else {"error_type": ErrorCode.RULE_DENIED.value}),
        )
    if decision.allowed:
        (_ALLOWED if entry else _ANONYMOUS).inc()
        headers = entry.user.headers() if entry else [*_ANONYMOUS_IDENTITY]
        headers.append(_NO_STORE)
        await _send(send, 200, headers, request_id, b"")
        return
    if decision.status == 401:  # an "authenticated" rule and no credential: not reached
        raise AssertionError("401 decisions are answered by _unauthorized")
    runtime.policy.forbidden[decision.rule_id or ""].inc()
    if prefers_html(accept):  # a person, through a proxy that shows our answer (Traefik)
        page = pages.refusal_page(403, "You may not open this page.")
        await _send(send, 403, page.headers, request_id, page.body)
        return
    code = ErrorCode.RULE_DENIED
    headers = [_JSON, _NO_STORE]
    resource = _resource_of(runtime, original) if decision.required_scopes else None
    if resource is not None:
        # An OAuth client that lacks a scope asks for it (step-up authorization).
        code = ErrorCode.INSUFFICIENT_SCOPE
        challenge = challenges.insufficient_scope(decision.required_scopes, resource.metadata_url)
        headers.append((b"www-authenticate", challenge))
    if original.nginx:  # nginx's @forbidden answers from it (auth_request drops our body)
        headers.append((b"x-auth-error", code.value.encode()))
    body = json.dumps(error_body(code, decision.reason, request_id, rule=decision.rule_id)).encode()
    await _send(send, 403, headers, request_id, body)


async def _unauthorized(
    runtime: Runtime,
    send: Any,
    refusal: CredentialError,
    request_id: str,
    original: ForwardedRequest,
    accept: bytes | None,
    rule: Rule | None,
) -> None:
    code = refusal.code
    _UNAUTHORIZED[code].inc()
    stage = "token_extraction" if code in _EXTRACTION_CODES else "token_validation"
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "refused",
            extra={
                "auth_stage": stage,
                "error_type": code.value,
                "reason": refusal.description,
                "method": original.method,
                "host": original.host,
                "path": original.path,
                "client_ip": original.client_ip,
            },
        )
    # Browsers go to the login page. nginx's auth_request cannot pass a redirect on (it
    # turns anything but 2xx/401/403 into a 500), nor our body: nginx-style requests get the
    # 401 with the login URL in X-Auth-Redirect (for browsers only, judged here as for every
    # proxy) and the error code in X-Auth-Error, from which the nginx configuration answers.
    headers: list[tuple[bytes, bytes]] = []
    if original.method in _REDIRECT_METHODS and prefers_html(accept):
        location = runtime.login_url
        if original.url:
            location += "?rd=" + quote(original.url, safe="")
        if not original.nginx:
            await _send(send, 302, [_NO_STORE, (b"location", location.encode())], request_id, b"")
            return
        headers.append((b"x-auth-redirect", location.encode()))
    if original.nginx:
        headers.append((b"x-auth-error", code.value.encode()))
    resource = _resource_of(runtime, original)
    challenge = challenges.unauthorized(
        resource_metadata=resource.metadata_url if resource is not None else None,
        scopes=rule.scopes if rule is not None else (),
        # error_description is our own fixed text; quotes cannot occur in it.
        error_description=refusal.description if code != ErrorCode.MISSING_TOKEN else None,
    )
    headers.append((b"www-authenticate", challenge))
    if prefers_html(accept) and not original.nginx:
        # A browser's post (or other method) that needs a session: no redirect would keep
        # its body, so a page that says so, with the way to sign in.
        page = pages.refusal_page(
            401,
            "Your session has ended, or you have not signed in yet. Sign in, then try again.",
            link=(runtime.login_url, "Sign in"),
        )
        await _send(send, 401, [*page.headers, *headers], request_id, page.body)
        return
    await _refuse(send, code, refusal.description, request_id, 401, headers)


async def _refuse(
    send: Any,
    code: ErrorCode,
    description: str,
    request_id: str,
    status: int,
    headers: list[tuple[bytes, bytes]] | None = None,
    accept: bytes | None = None,
) -> None:
    """Answer with our JSON error (a page for a browser); a refusal other than a 401 is
    counted and logged here, in the ``policy`` stage (a request we will not decide on)."""
    if status != 401:
        _UNAUTHORIZED[code].inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "refused",
                extra={"auth_stage": "policy", "error_type": code.value, "reason": description},
            )
    if prefers_html(accept):
        page = pages.refusal_page(status, description[:1].upper() + description[1:] + ".")
        await _send(send, status, [*page.headers, *(headers or ())], request_id, page.body)
        return
    body = _body(code, description, request_id)
    await _send(send, status, [_JSON, _NO_STORE, *(headers or ())], request_id, body)


def _body(code: ErrorCode, description: str, request_id: str) -> bytes:
    return json.dumps(error_body(code, description, request_id)).encode()


async def _send(
    send: Any, status: int, headers: list[tuple[bytes, bytes]], request_id: str, body: bytes
) -> None:
    headers.append((b"x-request-id", request_id.encode()))
    headers.append((b"content-length", str(len(body)).encode() if body else b"0"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body} if body else _EMPTY_BODY)
