"""The shipped proxy configurations, read as their programs read them: each copies every
identity header validate sends, and Caddy strips client-sent ones before asking.

``tests/e2e/`` runs the same files for real; these checks name the line that is wrong.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from auth_service.cache import IDENTITY_HEADERS

from .e2e.conftest import REPO, _caddy_binary
from .readme import fenced_blocks, section

# What the upstream must get from validate and from nobody else.
COPIED = [name.decode() for name in IDENTITY_HEADERS] + ["x-request-id"]


def caddy_routes(host: str) -> list[dict[str, Any]]:
    """The handlers of ``host``'s site in the shipped Caddyfile, in the order they run
    (subroutes flattened), as ``caddy adapt`` compiles them."""
    adapted = subprocess.run(
        [_caddy_binary(), "adapt", "--config", str(REPO / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    config = json.loads(adapted.stdout)
    handlers: list[dict[str, Any]] = []

    def walk(routes: list[dict[str, Any]]) -> None:
        for route in routes:
            for handler in route.get("handle", []):
                if handler["handler"] == "subroute":
                    walk(handler["routes"])
                else:
                    handlers.append(handler)

    for server in config["apps"]["http"]["servers"].values():
        for route in server["routes"]:
            hosts = [h for m in route.get("match", []) for h in m.get("host", [])]
            if host in hosts:
                walk([route])
    assert handlers, f"no site {host} in caddy/Caddyfile"
    return handlers


def test_caddy_strips_client_identity_before_forward_auth() -> None:
    handlers = caddy_routes("app.example.com")
    kinds = [h["handler"] for h in handlers]
    forward_auth = next(i for i, h in enumerate(handlers) if "handle_response" in h)
    deleted = [
        name
        for h in handlers[:forward_auth]
        if h["handler"] == "headers"
        for name in h.get("request", {}).get("delete", [])
    ]
    assert "X-Auth-*" in deleted, kinds
    assert kinds[-1] == "reverse_proxy" and forward_auth < len(handlers) - 1


def test_caddy_copies_every_identity_header_and_sets_its_own_request_id() -> None:
    handlers = caddy_routes("app.example.com")
    forward_auth = next(h for h in handlers if "handle_response" in h)
    assert forward_auth["rewrite"]["uri"] == "/api/v1/auth/validate"
    copied = [
        name.lower()
        for response in forward_auth["handle_response"]
        for route in response["routes"]
        for handler in route["handle"]
        for name in handler.get("request", {}).get("set", {})
    ]
    assert sorted(copied) == sorted(COPIED)  # caddy adapt sorts them
    sent = forward_auth["headers"]["request"]
    assert sent["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    assert "X-Original-*" in sent["delete"]


def test_caddy_login_host_keeps_operator_endpoints_inside() -> None:
    handlers = caddy_routes("auth.example.com")
    assert handlers[0] == {"handler": "static_response", "status_code": 404}
    proxy = handlers[-1]
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]


def test_traefik_copies_every_identity_header() -> None:
    dynamic = yaml.safe_load((REPO / "traefik" / "dynamic.yml").read_text())
    copied = dynamic["http"]["middlewares"]["auth"]["forwardAuth"]["authResponseHeaders"]
    assert [name.lower() for name in copied] == COPIED


def test_nginx_sets_every_identity_header_from_validates_answer() -> None:
    conf = (REPO / "nginx" / "auth-service.conf").read_text()
    variables = dict(re.findall(r"auth_request_set\s+\$(\w+)\s+\$upstream_http_(\w+);", conf))
    set_headers = re.findall(r"proxy_set_header\s+(X-[\w-]+)\s+\$(\w+);", conf)
    from_validate = [name.lower() for name, var in set_headers if var in variables]
    assert from_validate == COPIED
    for name, var in set_headers:
        if var in variables:
            assert variables[var] == name.lower().replace("-", "_")


def test_the_readme_points_at_each_shipped_proxy_file() -> None:
    readme = (REPO / "README.md").read_text()
    for path in ("traefik/dynamic.yml", "nginx/auth-service.conf", "caddy/Caddyfile"):
        assert f"`{path}`" in readme
        assert Path(REPO / path).is_file()


def test_the_readme_caddy_snippet_is_the_shipped_one() -> None:
    """The README's snippet, line by line, in the order of caddy/Caddyfile."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**Caddy**") :]
    snippet = section.split("```", 2)[1]
    shipped = [
        line.strip()
        for line in (REPO / "caddy" / "Caddyfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    position = 0
    for line in filter(None, (line.strip() for line in snippet.splitlines())):
        assert line in shipped[position:], f"not in caddy/Caddyfile (in this order): {line}"
        position = shipped.index(line, position) + 1


def test_the_readme_mcp_example_is_the_tested_traefik_file() -> None:
    """ "Protect an MCP server" shows traefik/mcp.yml, which tests/e2e/test_mcp_oauth.py runs
    with the ``mcp`` package's own client."""
    (block,) = [
        body for lang, body in fenced_blocks(section("Protect an MCP server")) if lang == "yaml"
    ]
    shipped = yaml.safe_load((REPO / "traefik" / "mcp.yml").read_text())
    assert yaml.safe_load(block) == shipped


@pytest.mark.parametrize(
    ("path", "router"),
    [("dynamic.yml", "app-resource-metadata"), ("mcp.yml", "mcp-resource-metadata")],
)
def test_traefik_routes_only_the_metadata_paths_around_the_gate(path: str, router: str) -> None:
    routers = yaml.safe_load((REPO / "traefik" / path).read_text())["http"]["routers"]
    metadata = routers[router]
    assert metadata["service"] == "auth-service"
    assert metadata["middlewares"] == ["no-client-request-id"]
    host = re.match(r"Host\(`([^`]+)`\) && ", metadata["rule"])
    assert host, metadata["rule"]
    assert metadata["rule"] == (
        f"Host(`{host.group(1)}`) && (Path(`/.well-known/oauth-protected-resource`)"
        " || PathPrefix(`/.well-known/oauth-protected-resource/`))"
    )
    gated = [r for name, r in routers.items() if r["rule"] == f"Host(`{host.group(1)}`)"]
    assert [r["middlewares"] for r in gated] == [["auth"]]
    assert metadata["priority"] > len(metadata["rule"])  # above the gated router
