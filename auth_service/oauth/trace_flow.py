"""What the steps of ``trace-oauth`` share: the state one step hands the next, how a step
fails, and the few readers of HTTP answers they all use.

Every secret the flow holds (the password, the PKCE verifier, codes, tokens, CSRF values) is
given to the recorder's redactor the moment it exists, so no trace or message can carry it.
"""

from __future__ import annotations

import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .trace_record import Recorder

__all__ = ["CLIENT_NAME", "FlowState", "StepFailed", "error_of", "json_object", "parse_challenge"]

CLIENT_NAME = "auth-service trace-oauth"
_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


class StepFailed(Exception):
    """The step found a problem; ``fix`` says what to change."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass
class FlowState:
    """What one step learns and a later one needs."""

    server_url: str
    username: str
    password: str
    http: httpx.AsyncClient
    recorder: Recorder
    redirect_uri: str = field(
        default_factory=lambda: f"http://127.0.0.1:{49152 + secrets.randbelow(16_000)}/callback"
    )
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    resource_metadata_url: str = ""
    resource: str = ""
    issuer: str = ""
    scopes: list[str] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    client_id: str | None = None
    next_url: str = ""
    callback: str = ""
    code: str = ""
    access_token: str = ""
    refresh_token: str = ""

    async def send(self, step: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        began = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise StepFailed(
                f"{method} {self.recorder.redactor.url(url)}: {type(e).__name__}: {e}",
                _UNTRUSTED_FIX
                if _certificate_refused(e)
                else "check that the URL is right and reachable from here (DNS, TLS, firewall)",
            ) from None
        self.recorder.record(step, response, (time.monotonic() - began) * 1000)
        return response

    def remember(self, *secrets_: str | None) -> None:
        self.recorder.redactor.remember(*secrets_)


_UNTRUSTED_FIX = (
    "the server's certificate is not trusted here: if a private CA signed it, pass that CA's "
    "certificate with --ca-file (MCP clients need it in their trust store too)"
)


def _certificate_refused(error: BaseException) -> bool:
    """Whether the TLS handshake failed on the certificate (httpx wraps the ssl error)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme and auth-params of one ``WWW-Authenticate`` challenge (RFC 9110 §11.6.1)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        value = m.group(3) if m.group(2) is None else re.sub(r"\\(.)", r"\1", m.group(2))
        params.setdefault(m.group(1).lower(), value)
    return scheme, params


def json_object(response: httpx.Response, what: str, fix: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise StepFailed(f"{what} is not a JSON object", fix)
    return body


def error_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or "error" not in body:
        return ""
    return f": {body.get('error')} ({body.get('error_description', '')})"
