"""URLs of OAuth: canonical issuers and resources, loopback, redirect URIs, resource covering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.config import ResourceConfig, RuleConfig
from auth_service.oauth.errors import InvalidRedirectUri
from auth_service.oauth.resources import Resource, ResourceSet
from auth_service.oauth.urls import (
    canonical_url,
    check_canonical,
    is_loopback_host,
    redirect_uri_matches,
    validate_redirect_uri,
)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("HTTPS://MCP.Example.COM:443/mcp", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com:8443/mcp/", None),  # trailing slash: two spellings
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[0:0::1]:9000/a", "http://[::1]:9000/a"),
        ("https://mcp.example.com/a/../b", None),
        ("https://mcp.example.com/a//b", None),
        ("https://mcp.example.com/%61", None),
        ("https://mcp.example.com/mcp?x=1", None),
        ("https://mcp.example.com/mcp#f", None),
        ("https://user@mcp.example.com/mcp", None),
        ("https://mcp.example.com:0/", None),
        ("https://mcp.example.com:99999/", None),
        ("ftp://mcp.example.com/", None),
        ("https://mcp_example.com/", None),
        ("https://mcp.example.com/a b", None),
        ("/mcp", None),
    ],
)
def test_canonical_url(url: str, canonical: str | None) -> None:
    assert canonical_url(url) == canonical


@given(st.text(alphabet="abcXYZ019./:%-_@[]?#", max_size=40).map(lambda s: "https://" + s))
def test_canonicalising_twice_changes_nothing(url: str) -> None:
    once = canonical_url(url)
    if once is not None:
        assert canonical_url(once) == once


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://auth.example.com", None),
        ("http://127.0.0.1:8080", None),
        ("http://localhost:9000", None),
        ("https://Auth.example.com", "use https://auth.example.com"),
        ("https://auth.example.com:443", "use https://auth.example.com"),
        ("https://auth.example.com/", "use https://auth.example.com"),
        ("http://auth.example.com", "must be https"),
        ("https://auth.example.com/tenant", "must have no path"),
    ],
)
def test_an_issuer_must_be_canonical_https_or_loopback(url: str, fragment: str | None) -> None:
    problem = check_canonical(url, allow_path=False)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("mcp.localhost", True),
        ("LOCALHOST", True),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb",
        "https://app.example.com/cb?tenant=1",
        "http://127.0.0.1:33333/callback",
        "http://127.0.0.1/callback",
        "http://[::1]:8000/cb",
        "http://localhost:5000/cb",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://app.example.com/cb", "loopback"),
        ("http://127.0.0.2/cb", "loopback"),
        ("http://mcp.localhost/cb", "loopback"),
        ("https://app.example.com/cb#x", "fragment"),
        ("https://user:pw@app.example.com/cb", "user name"),
        ("http://evil.com@127.0.0.1/cb", "user name"),
        ("javascript:alert(1)", "not allowed"),
        ("cursor://callback", "not allowed"),
        ("data:text/html,x", "not allowed"),
        ("/relative", "absolute"),
        ("HTTPS://app.example.com/cb", "lower-case"),
        ("https:///cb", "host"),
        ("https://app.example.com/c b", "printable"),
        ("https://app.example.com/\u00e9", "printable"),
        ("https://app.example.com:99999/cb", "absolute"),
        ("https://a.example/" + "x" * 2000, "longer"),
        ("", "non-empty"),
    ],
)
def test_refused_redirect_uris(uri: str, fragment: str) -> None:
    with pytest.raises(InvalidRedirectUri, match=fragment):
        validate_redirect_uri(uri)


def test_private_use_schemes_only_when_allowed() -> None:
    assert validate_redirect_uri("cursor://anysphere.cursor-mcp/oauth", ("cursor",))
    with pytest.raises(InvalidRedirectUri):
        validate_redirect_uri("vscode://x/cb", ("cursor",))


@pytest.mark.parametrize(
    ("registered", "presented", "matches"),
    [
        ("https://app.example.com/cb", "https://app.example.com/cb", True),
        ("https://app.example.com/cb", "https://app.example.com/cb/", False),
        ("https://app.example.com/cb", "https://app.example.com:8443/cb", False),
        ("https://app.example.com/cb", "https://APP.example.com/cb", False),
        ("https://app.example.com/cb", "https://app.example.com/cb?x=1", False),
        ("http://127.0.0.1:1111/callback", "http://127.0.0.1:2222/callback", True),
        ("http://127.0.0.1/callback", "http://127.0.0.1:2222/callback", True),
        ("http://[::1]:1/cb", "http://[::1]:2/cb", True),
        ("http://localhost:1/cb", "http://localhost:2/cb", True),
        ("http://127.0.0.1:1111/callback", "http://127.0.0.1:2222/other", False),
        ("http://127.0.0.1:1111/callback", "http://localhost:1111/callback", False),
        ("http://127.0.0.1:1111/callback", "http://evil@127.0.0.1:2222/callback", False),
        ("http://127.0.0.1:1111/callback", "http://127.0.0.1:2222/callback#x", False),
        ("http://127.0.0.1:1111/callback", "https://127.0.0.1:2222/callback", False),
        ("http://127.0.0.1:1111/callback", "http://127.0.0.1:x/callback", False),
    ],
)
def test_redirect_uri_matching(registered: str, presented: str, matches: bool) -> None:
    assert redirect_uri_matches(registered, presented) is matches


def _resources(*urls: str) -> ResourceSet:
    return ResourceSet(ResourceConfig(url=u, scopes=("mcp",)) for u in urls)


@pytest.mark.parametrize(
    ("proto", "host", "path", "expected"),
    [
        ("https", "mcp.example.com", "/mcp", "https://mcp.example.com/mcp"),
        ("https", "MCP.example.com:443", "/mcp/tools", "https://mcp.example.com/mcp"),
        ("https", "mcp.example.com", "/mcp/admin/x", "https://mcp.example.com/mcp/admin"),
        ("https", "mcp.example.com", "/mcpx", None),
        ("https", "mcp.example.com", "/", None),
        ("http", "mcp.example.com", "/mcp", None),
        ("https", "mcp.example.com:8443", "/mcp", None),
        ("https", "other.example.com", "/mcp", None),
        ("https", "root.example.com", "/anything", "https://root.example.com"),
        ("https", "evil@mcp.example.com", "/mcp", None),
    ],
)
def test_covering_resource_is_the_longest_segment_prefix(
    proto: str, host: str, path: str, expected: str | None
) -> None:
    resources = _resources(
        "https://mcp.example.com/mcp",
        "https://mcp.example.com/mcp/admin",
        "https://root.example.com",
    )
    found = resources.covering(proto, host, path)
    assert (found.url if found else None) == expected


def test_a_resource_names_its_metadata_url() -> None:
    assert (
        Resource.at("https://mcp.example.com/mcp").metadata_url
        == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )
    assert (
        Resource.at("http://127.0.0.1:9001").metadata_url
        == "http://127.0.0.1:9001/.well-known/oauth-protected-resource"
    )


def test_configured_resources_are_an_allow_list() -> None:
    resources = _resources("https://mcp.example.com/mcp")
    assert resources.get("HTTPS://mcp.example.com:443/mcp") is not None
    assert resources.get("https://mcp.example.com/other") is None
    assert resources.get("https://mcp.example.com/mcp#x") is None
    assert resources.only() is not None
    assert _resources("https://a.example/mcp", "https://b.example/mcp").only() is None


def test_unconfigured_every_https_or_loopback_url_is_a_resource_with_its_rules_scopes() -> None:
    rules = (
        RuleConfig(id="w", host="mcp.example.com", scopes=("orders:write",)),
        RuleConfig(id="r", scopes=("orders:read",)),
        RuleConfig(id="o", host="*.other.example", scopes=("other",)),
    )
    resources = ResourceSet((), rules)
    found = resources.get("https://mcp.example.com/mcp")
    assert found is not None and found.scopes == ("orders:read", "orders:write")
    assert resources.get("http://example.com/mcp") is None
    assert resources.get("http://localhost:9000/mcp") is not None
    covering = resources.covering("https", "a.other.example", "/x")
    assert covering is not None
    assert (covering.url, covering.scopes) == ("https://a.other.example", ("orders:read", "other"))
    assert resources.covering("http", "example.com", "/") is None
    assert resources.all_scopes() == ("orders:read", "orders:write", "other")
