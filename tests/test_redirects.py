"""Safe redirects: ``rd`` may send a browser only to us or to an allowed domain.

The refused cases include the public open-redirect patterns reported against oauth2-proxy
(CVE-2017-1000070, CVE-2020-5233, CVE-2020-4037, CVE-2020-11053, CVE-2021-21291) and
Pomerium (user-info and scheme confusion in its redirect parameter).
"""

from __future__ import annotations

import pytest

from auth_service.redirects import host_allowed, safe_redirect

PUBLIC = "https://auth.example.com"
DEFAULT = PUBLIC + "/"
ALLOWED = (".example.com", "app.partner.org")


def check(rd: str | None) -> str:
    return safe_redirect(rd, public_url=PUBLIC, allowed_domains=ALLOWED, default=DEFAULT)


@pytest.mark.parametrize(
    ("rd", "expected"),
    [
        ("https://app.example.com/orders?id=3", "https://app.example.com/orders?id=3"),
        ("https://example.com/", "https://example.com/"),
        ("http://deep.sub.example.com:8443/x", "http://deep.sub.example.com:8443/x"),
        ("https://app.partner.org/", "https://app.partner.org/"),
        ("https://auth.example.com/account", "https://auth.example.com/account"),
        ("/account/settings?tab=1", PUBLIC + "/account/settings?tab=1"),
        ("/", PUBLIC + "/"),
    ],
)
def test_allowed_targets(rd: str, expected: str) -> None:
    assert check(rd) == expected


@pytest.mark.parametrize(
    "rd",
    [
        # CVE-2017-1000070: scheme-relative URL to another host.
        "//evil.com",
        "//evil.com/path",
        "///evil.com",
        # CVE-2020-5233: a backslash that browsers read as a slash.
        "/\\evil.com",
        "\\\\evil.com",
        "/\\/evil.com",
        # CVE-2020-4037 / CVE-2020-11053: whitespace and control characters between slashes.
        "/\t/evil.com",
        "/ /evil.com",
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0d/evil.com",
        "/%20/evil.com",
        "/%2F/evil.com",
        "/%5C/evil.com",
        "/\n/evil.com",
        "https://evil.com%09.example.com/",
        # CVE-2021-21291: a leading-dot domain must not match a mere suffix.
        "https://evilexample.com/",
        "https://example.com.evil.com/",
        "https://notexample.com/",
        # User-info and fragment tricks (Pomerium, and the family in general).
        "https://app.example.com@evil.com/",
        "https://evil.com\\@app.example.com/",
        "https://evil.com#@app.example.com/",
        "https://evil.com?@app.example.com/",
        "https://app.example.com%40evil.com/",
        "https://evil.com%2F.example.com/",
        "https://evil.com%23.example.com/",
        # Schemes that are not http(s), or mangled ones.
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.cookie)",
        "javascript://app.example.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https:evil.com",
        "https:/evil.com",
        "https:\\\\evil.com",
        "ftp://app.example.com/",
        # Not ours and not allowed, or malformed hosts and ports.
        "https://evil.com/",
        "https://partner.org/",
        "https://app.example.com:99999/",
        "https://[::1]/",
        "https://app.exam_ple.com/",
        # Non-ASCII look-alikes and overlong values.
        "https://app.ex\u0430mple.com/",  # Cyrillic small a, U+0430
        "https://app.example.com/" + "a" * 3000,
        "",
        None,
    ],
)
def test_unsafe_targets_fall_back_to_the_default(rd: str | None) -> None:
    assert check(rd) == DEFAULT


def test_domain_matching() -> None:
    assert host_allowed("a.example.com", [".example.com"])
    assert host_allowed("example.com", [".example.com"])
    assert not host_allowed("badexample.com", [".example.com"])
    assert not host_allowed("a.example.com", ["example.com"])
    assert host_allowed("example.com", ["example.com"])
