"""OAuth configuration: ``[[resources]]`` errors named by index, the issuer checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from auth_service.config import load_config
from auth_service.errors import ConfigurationError
from auth_service.settings import Settings

from .conftest import run_cli


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[[resources]]\nurl = "https://MCP.example.com/mcp"\nscopes = ["mcp"]\n',
            ["resources[0].url", "not canonical, use https://mcp.example.com/mcp"],
        ),
        (
            '[[resources]]\nurl = "https://mcp.example.com/mcp/"\nscopes = ["mcp"]\n',
            ["resources[0].url"],
        ),
        (
            '[[resources]]\nurl = "http://mcp.example.com/mcp"\nscopes = ["mcp"]\n',
            ["resources[0].url", "must be https"],
        ),
        ('[[resources]]\nurl = "https://m.example/mcp"\n', ["resources[0].scopes", "required"]),
        (
            '[[resources]]\nurl = "https://m.example/mcp"\nscopes = []\n',
            ["resources[0].scopes", "at least 1"],
        ),
        (
            '[[resources]]\nurl = "https://m.example/mcp"\nscopes = ["a b"]\n',
            ["resources[0].scopes", "not a scope token"],
        ),
        (
            '[[resources]]\nurl = "https://m.example/mcp"\nscopes = ["offline_access"]\n',
            ["resources[0].scopes", "offline_access"],
        ),
        (
            '[[resources]]\nurl = "https://m.example/a"\nscopes = ["x"]\n'
            '[[resources]]\nurl = "https://m.example/a"\nscopes = ["y"]\n',
            ["resource urls must be unique", "https://m.example/a"],
        ),
        (
            '[[resources]]\nurl = "https://m.example/a"\nscopes = ["x"]\nrules = ["nope"]\n',
            ["resources[0].rules", "no rule has id 'nope'"],
        ),
        (
            '[[rules]]\nid = "w"\nscopes = ["orders:write"]\n'
            '[[resources]]\nurl = "https://m.example/a"\nscopes = ["orders:read"]\n'
            'rules = ["w"]\n',
            ["resources[0].rules", "orders:write", "not in the resource's scopes"],
        ),
    ],
)
def test_invalid_resources_name_the_entry_and_the_problem(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_valid_resource_loads(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(
        '[[rules]]\nid = "w"\npath = "/mcp/**"\nscopes = ["orders:write"]\n'
        '[[resources]]\nurl = "https://mcp.example.com/mcp"\nname = "Orders"\n'
        'scopes = ["orders:read", "orders:write"]\nrules = ["w"]\n'
    )
    config = load_config(path)
    assert config.resources[0].url == "https://mcp.example.com/mcp"
    assert config.resources[0].name == "Orders"


@pytest.mark.parametrize(
    ("public_url", "active"),
    [
        ("https://auth.example.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:9000", True),
        ("http://auth.example.com", False),  # plain http off loopback
        ("https://Auth.Example.com", False),  # clients would compare another spelling
        ("https://auth.example.com/base", False),  # the well-known documents live at the root
    ],
)
def test_oauth_is_on_by_default_only_for_a_usable_issuer(public_url: str, active: bool) -> None:
    settings = Settings(public_url=public_url)
    assert settings.oauth_active is active
    assert (settings.oauth_issuer_problem is None) is active
    assert Settings(public_url=public_url, oauth_enabled=False).oauth_active is False


def test_oauth_enabled_with_an_unusable_issuer_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match=r"not canonical, use https://auth\.example\.com"):
        Settings(
            public_url="https://auth.example.com",
            issuer="https://auth.example.com:443",
            oauth_enabled=True,
        )


def test_token_registration_needs_the_token() -> None:
    with pytest.raises(ValidationError, match="AUTH_OAUTH_REGISTRATION_TOKEN"):
        Settings(oauth_registration="token")


@pytest.mark.parametrize("scheme", ["https", "javascript", "1x", "a b"])
def test_private_redirect_schemes_refuse_web_schemes(scheme: str) -> None:
    with pytest.raises(ValidationError, match="private-use"):
        Settings(oauth_redirect_schemes=scheme)


def test_serve_refuses_oauth_enabled_with_an_unusable_issuer_in_one_line() -> None:
    result = run_cli(
        "serve", AUTH_OAUTH_ENABLED="true", AUTH_PUBLIC_URL="https://auth.example.com:443"
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AUTH_OAUTH_ENABLED is true" in lines[0]
    assert "not canonical, use https://auth.example.com" in lines[0]


def test_check_config_lists_the_resources(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(
        '[[rules]]\nid = "w"\nscopes = ["orders:write"]\n'
        '[[resources]]\nurl = "https://mcp.example.com/mcp"\n'
        'scopes = ["orders:read", "orders:write"]\nrules = ["w"]\n'
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        "resource https://mcp.example.com/mcp  scopes=orders:read,orders:write  rules=w"
        in result.stdout.splitlines()
    )
