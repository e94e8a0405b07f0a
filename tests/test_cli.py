"""The ``auth-service`` command: user management and its error paths, as an operator runs it."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from .conftest import PASSWORD, run_cli


def run(
    database_url: str | None, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    if database_url is not None:
        env["AUTH_DATABASE_URL"] = database_url
    return run_cli(*args, stdin=stdin, **env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("auth-service: error:")
    assert fragment in lines[0]


def test_user_add_show_list(database_url: str) -> None:
    added = run(
        database_url,
        "user",
        "add",
        "alice",
        "--password-stdin",
        "--group",
        "admins",
        "--group",
        "dev",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added user alice" in added.stdout

    shown = run(database_url, "user", "show", "alice", "--json")
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    assert data["username"] == "alice"
    assert data["groups"] == ["admins", "dev"]
    assert data["disabled"] is False
    # argon2id at or above OWASP's minimum (m=19 MiB, t=2, p=1).
    assert data["password_hash"].startswith("$argon2id$v=19$")
    params = dict(p.split("=") for p in data["password_hash"].split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2 and int(params["p"]) >= 1
    assert PASSWORD not in shown.stdout

    listed = run(database_url, "user", "list")
    assert listed.returncode == 0
    assert "alice" in listed.stdout and "admins,dev" in listed.stdout


def test_duplicate_user_is_a_one_line_error(database_url: str) -> None:
    assert (
        run(
            database_url, "user", "add", "alice", "--password-stdin", stdin="first passphrase\n"
        ).returncode
        == 0
    )
    again = run(
        database_url, "user", "add", "alice", "--password-stdin", stdin="second passphrase\n"
    )
    assert_one_line_error(again, "user already exists: alice")


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (("user", "add", "bob", "--password-stdin"), "\n", "the password is empty"),
        (("user", "add", "bob", "--password-stdin"), "", "the password is empty"),
        (("user", "add", "bob"), "", "use --password-stdin"),
        (("user", "add", "bad name", "--password-stdin"), "pw\n", "invalid user name"),
        (("user", "add", "bob", "--password-stdin", "--group", "a,b"), "pw\n", "invalid group"),
        (("user", "add", "bob", "--password-stdin"), "short\n", "at least 8 characters"),
        (("user", "add", "bob", "--password-stdin"), "Password123\n", "too common"),
        (("user", "add", "bob", "--password-stdin"), "qwertyuiop\n", "too common"),
        (("user", "add", "bobby-tables", "--password-stdin"), "Bobby-Tables\n", "user name"),
        (("user", "add", "bob", "--password-stdin"), "x" * 1025 + "\n", "longer than 1024"),
        (("user", "show", "nobody"), "", "no such user: nobody"),
        (("user", "unlock", "nobody"), "", "no such user: nobody"),
        (("user", "disable", "nobody"), "", "no such user: nobody"),
        (
            ("user", "passwd", "nobody", "--password-stdin"),
            "new-password\n",
            "no such user: nobody",
        ),
    ],
)
def test_user_mistakes_are_one_line_errors(
    database_url: str, args: tuple[str, ...], stdin: str, fragment: str
) -> None:
    assert_one_line_error(run(database_url, *args, stdin=stdin), fragment)


def test_unreachable_database_and_bad_configuration(database_url: str) -> None:
    down = run("postgresql://nobody@127.0.0.1:1/none", "user", "list")
    assert_one_line_error(down, "cannot connect to PostgreSQL")
    bad = run(database_url, "user", "list", AUTH_LOG_FORMAT="xml")
    assert_one_line_error(bad, "AUTH_LOG_FORMAT")


def test_long_passphrases_and_any_characters_are_welcome(database_url: str) -> None:
    for name, password in [
        ("long", "a" * 64),
        ("longer", "correct horse " * 40),
        ("unicode", "mot de passe très sûr ✓"),
    ]:
        added = run(database_url, "user", "add", name, "--password-stdin", stdin=password + "\n")
        assert added.returncode == 0, added.stderr


def test_migrate_is_idempotent(database_url: str) -> None:
    result = run(database_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_disable_and_passwd_take_effect_at_login(database_url: str, serve) -> None:  # type: ignore[no-untyped-def]
    assert (
        run(
            database_url, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"
        ).returncode
        == 0
    )
    assert (
        run(
            database_url, "user", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n"
        ).returncode
        == 0
    )
    served = serve(AUTH_DATABASE_URL=database_url)

    def login(user: str, password: str) -> int:
        response = httpx.post(
            served.url + "/api/v1/auth/login", json={"username": user, "password": password}
        )
        return response.status_code

    assert login("alice", PASSWORD) == 200
    changed = run(
        database_url, "user", "passwd", "alice", "--password-stdin", stdin="a new passphrase\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert login("alice", PASSWORD) == 401
    assert login("alice", "a new passphrase") == 200

    assert login("bob", PASSWORD) == 200
    assert run(database_url, "user", "disable", "bob").returncode == 0
    assert login("bob", PASSWORD) == 401
    assert "disabled" in run(database_url, "user", "list").stdout


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_audit_limit_must_be_a_positive_number(limit: str) -> None:
    """A usage error, before any database is opened (it was PostgreSQL's LIMIT error)."""
    result = run_cli("audit", "--limit", limit, AUTH_DATABASE_URL="postgresql://nowhere.invalid/x")
    assert result.returncode == 2
    assert "--limit: not a whole number of at least 1" in result.stderr
    assert "Traceback" not in result.stderr and "InvalidRowCount" not in result.stderr
