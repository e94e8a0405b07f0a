"""The configuration file: clear errors naming file, key and problem; check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_service.config import load_config
from auth_service.errors import ConfigurationError

from .conftest import run_cli


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[[rules]]\nid = "x"\nallow = "maybe"\n', ["rules[0].allow", "'anonymous'"]),
        ('[[rules]]\nid = "x"\n[[rules]]\nid = "x"\n', ["unique", "x"]),
        ('[[rules]]\nid = "x"\npath = "no-slash"\n', ["rules[0].path"]),
        ('[[rules]]\nid = "x"\npath = "/**/a**"\n', ["rules[0].path", "whole segment"]),
        ('[[rules]]\nid = "x"\npath = "/public/../admin"\n', ["rules[0].path", "'..'"]),
        ('[[rules]]\nid = "x"\ncase_sensitive = "sometimes"\n', ["rules[0].case_sensitive"]),
        ('[[rules]]\nid = "x"\nallow = "anonymous"\ngroups = ["a"]\n', ["only apply"]),
        ('[[rules]]\nid = "x"\ncolour = "red"\n', ["rules[0].colour", "Extra inputs"]),
        ('[[issuers]]\nissuer = "https://idp.example"\n', ["issuers[0].audience", "required"]),
        (
            '[[issuers]]\nissuer = "https://i"\naudience = "a"\nalgorithms = ["HS256"]\n',
            ["issuers[0].algorithms", "HS256"],
        ),
        (
            '[[issuers]]\nissuer = "https://i"\naudience = "a"\nalgorithms = ["none"]\n',
            ["issuers[0].algorithms", "none"],
        ),
        (
            '[[issuers]]\nissuer = "https://i"\naudience = "a"\ngroups_map = {x = "a b"}\n',
            ["issuers[0].groups_map", "not a group name"],
        ),
        (
            '[[issuers]]\nissuer = "https://i"\naudience = "a"\nusername_prefix = "a b:"\n',
            ["issuers[0].username_prefix"],
        ),
        ("[[rules]\n", ["not valid TOML"]),
    ],
)
def test_invalid_files_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_check_config_lists_rules_in_evaluation_order(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(
        '[[rules]]\nid = "first"\npath = "/a/**"\nallow = "anonymous"\n'
        '[[rules]]\nid = "second"\npath = "/b"\nmethods = ["get"]\ngroups = ["g"]\n'
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "valid" in lines[0]
    first = next(i for i, line in enumerate(lines) if "first" in line)
    second = next(i for i, line in enumerate(lines) if "second" in line)
    assert first < second
    assert "methods=GET" in lines[second] and "groups=g" in lines[second]
    assert lines[-1] == "otherwise: authenticated"


def test_serve_refuses_an_invalid_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text('[[rules]]\nid = "x"\nallow = "maybe"\n')
    result = run_cli("serve", AUTH_CONFIG=str(path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "rules[0].allow" in result.stderr
    assert "Traceback" not in result.stderr
