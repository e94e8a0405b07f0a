"""Our HTML pages: templates, the headers every page carries, and the error page.

Pages are plain HTML from ``templates/`` (``string.Template``, every value escaped), served
with a strict Content-Security-Policy (a per-response nonce for the one inline style, no
scripts), ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.

``Referrer-Policy: same-origin``: the login page's URL holds ``rd`` (the address the person
asked for, query included), which must not reach other sites. ``no-referrer`` would hide it
too, but the Fetch standard then makes a browser send ``Origin: null`` even on a same-origin
form post, and the login form could no longer tell its own posts from a forged one by their
``Origin``. Under ``same-origin`` our own posts carry our exact origin, and a request to
another site carries no referrer at all.

A person in a browser never sees our JSON: a refusal is the form again with a message, or
the error page here, with a way back.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..validation import prefers_html

REFERRER_POLICY = "same-origin"

_ERROR_HEADINGS = {
    400: "This request is not valid",
    401: "Please sign in",
    403: "Not for you",
    404: "Page not found",
    405: "Not possible here",
    413: "The form is too large",
    415: "The form could not be read",
    429: "Too many attempts",
    503: "The service is unavailable",
}


@cache
def _template(name: str) -> Template:
    text = resources.files("auth_service").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def origin_of(url: str) -> str:
    """Scheme, host and port of an absolute URL: a CSP source that names the port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _csp(nonce: str, form_targets: Iterable[str]) -> str:
    # A form's post ends in a redirect, and Chromium checks that redirect against
    # form-action too: the page names the exact origin (port included) it will send the
    # browser to. A host without a port would match the scheme's default port only.
    targets = " ".join(["'self'", *sorted(set(form_targets))])
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def wants_html(request: Request) -> bool:
    """Whether the client is a browser (``Accept`` names ``text/html`` at least as high as
    JSON): it gets a page, anything else our JSON error."""
    return prefers_html(request.headers.get("accept", "").encode("latin-1"))


def render(
    title: str,
    body: str,
    values: dict[str, str],
    *,
    markup: dict[str, str] | None = None,
    status: int = 200,
    form_targets: Iterable[str] = (),
) -> HTMLResponse:
    """A page: ``body`` filled with escaped ``values`` and our own trusted ``markup``;
    ``form_targets`` are the origins its form may end up on (besides its own)."""
    nonce = secrets.token_urlsafe(16)
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    content = _template(body).substitute(escaped, **(markup or {}))
    page = _template("page.html").safe_substitute(
        title=html.escape(title), nonce=nonce, content=content, referrer=REFERRER_POLICY
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={
            "content-security-policy": _csp(nonce, form_targets),
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "referrer-policy": REFERRER_POLICY,
            "cache-control": "no-store",
        },
    )


def message_html(message: str, *, error: bool) -> str:
    """A notice above a form: an alert for an error, a status line otherwise."""
    if not message:
        return ""
    kind, role = ("error", "alert") if error else ("info", "status")
    return f'<p class="message {kind}" role="{role}">{html.escape(message)}</p>'


def error_page(
    status: int,
    text: str,
    *,
    heading: str | None = None,
    link: tuple[str, str] = ("/", "Go to the start page"),
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page a person sees for a refusal that has no form to show again."""
    href, label = link
    page = render(
        heading or _ERROR_HEADINGS.get(status, "Something went wrong"),
        "message.html",
        {"heading": heading or _ERROR_HEADINGS.get(status, "Something went wrong"), "text": text},
        markup={"link": f'<p><a href="{html.escape(href)}">{html.escape(label)}</a></p>'},
        status=status,
    )
    page.headers.update(headers or {})
    return page


@dataclass(frozen=True, slots=True)
class RawPage:
    """An error page for the plain ASGI validate endpoint: its headers and body, as sent."""

    headers: list[tuple[bytes, bytes]]
    body: bytes


def refusal_page(
    status: int, text: str, *, link: tuple[str, str] = ("/", "Go to the start page")
) -> RawPage:
    """``error_page`` for validate, whose refusals a proxy may show a person as they are
    (Traefik does; nginx shows its own page)."""
    page = error_page(status, text, link=link)
    headers = [(k, v) for k, v in page.raw_headers if k != b"content-length"]
    return RawPage(headers, bytes(page.body))
