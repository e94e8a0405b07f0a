"""``auth-service backup`` and ``restore`` (cli/backup.py): round trips into a fresh
database and a fresh embedded data folder, and the restores that must be refused."""

from __future__ import annotations

import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from .conftest import PASSWORD, Served, run_cli, with_database
from .test_cli import assert_one_line_error
from .test_embedded import data_dir as data_dir
from .test_replicas import login, refresh, validate

OTHER_KEK = "b3RoZXIga2V5LWVuY3J5cHRpb24ta2V5IGZvciB0ZXN0cyE"


async def row_counts(url: str) -> dict[str, int]:
    """Every table of the schema and its number of rows: whatever the migrations made."""
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        counts = {}
        for table in tables:
            counts[table] = int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))  # noqa: S608
        return counts
    finally:
        await conn.close()


@pytest.fixture
async def empty_database(server_url: str) -> Iterator[str]:
    """A new database with nothing in it, as an operator would create to restore into."""
    name = "r_" + secrets.token_hex(6)
    conn = await asyncpg.connect(server_url)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    yield with_database(server_url, name)
    conn = await asyncpg.connect(server_url)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="auth-backup-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _user_add(**env: str) -> None:
    added = run_cli(
        "user", "add", "alice", "--password-stdin", "--group", "admins", stdin=PASSWORD, **env
    )
    assert added.returncode == 0, added.stderr


async def test_a_backup_restored_into_a_new_database_brings_everything_back(
    database_url: str, empty_database: str, serve: Callable[..., Served], folder: Path
) -> None:
    _user_add(AUTH_DATABASE_URL=database_url)
    source = serve(AUTH_DATABASE_URL=database_url)
    pair = login(source)
    assert run_cli("keys", "rotate", AUTH_DATABASE_URL=database_url).returncode == 0
    archive = folder / "auth.backup"
    made = run_cli("backup", str(archive), AUTH_DATABASE_URL=database_url)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    before = await row_counts(database_url)
    assert before["users"] == 1 and before["sessions"] == 1 and before["signing_keys"] == 2
    source.stop()

    restored = run_cli("restore", str(archive), AUTH_DATABASE_URL=empty_database)
    assert restored.returncode == 0, restored.stderr
    assert "1 users" in restored.stdout
    assert await row_counts(empty_database) == before

    again = serve(AUTH_DATABASE_URL=empty_database)
    assert validate(again, pair["access_token"]) == 200
    assert refresh(again, pair["refresh_token"]).status_code == 200
    shown = run_cli("user", "show", "alice", "--json", AUTH_DATABASE_URL=empty_database)
    assert "admins" in shown.stdout


def test_the_embedded_default_backs_up_and_restores_into_a_fresh_data_folder(
    data_dir: Path,
    serve: Callable[..., Served],
    folder: Path,
) -> None:
    _user_add(AUTH_DATA_DIR=str(data_dir))
    source = serve(AUTH_DATA_DIR=str(data_dir))
    pair = login(source)
    archive = folder / "auth.backup"
    made = run_cli("backup", str(archive), AUTH_DATA_DIR=str(data_dir))
    assert made.returncode == 0, made.stderr
    source.stop()

    fresh = folder / "fresh"
    restored = run_cli("restore", str(archive), AUTH_DATA_DIR=str(fresh))
    assert restored.returncode == 0, restored.stderr
    again = serve(AUTH_DATA_DIR=str(fresh))
    assert validate(again, pair["access_token"]) == 200
    assert refresh(again, pair["refresh_token"]).status_code == 200


async def test_a_restore_refuses_a_database_that_is_not_empty(
    database_url: str, folder: Path
) -> None:
    archive = folder / "auth.backup"
    assert run_cli("backup", str(archive), AUTH_DATABASE_URL=database_url).returncode == 0
    assert_one_line_error(
        run_cli("restore", str(archive), AUTH_DATABASE_URL=database_url), "not empty"
    )


async def test_a_restore_with_another_key_encryption_key_leaves_the_database_empty(
    database_url: str, empty_database: str, folder: Path, serve: Callable[..., Served]
) -> None:
    serve(AUTH_DATABASE_URL=database_url).stop()  # it made the signing key and the CSRF key
    archive = folder / "auth.backup"
    assert run_cli("backup", str(archive), AUTH_DATABASE_URL=database_url).returncode == 0
    refused = run_cli(
        "restore", str(archive), AUTH_DATABASE_URL=empty_database, AUTH_KEY_ENCRYPTION_KEY=OTHER_KEK
    )
    assert_one_line_error(refused, "key-encryption key")
    assert await row_counts(empty_database) == {}
    # With the right key, the same database takes the same archive.
    assert run_cli("restore", str(archive), AUTH_DATABASE_URL=empty_database).returncode == 0


def test_a_fresh_data_folder_without_the_key_encryption_key_is_refused_up_front(
    folder: Path,
) -> None:
    archive = folder / "auth.backup"
    archive.write_bytes(b"PGDMP")
    refused = run_cli(
        "restore", str(archive), AUTH_DATA_DIR=str(folder / "fresh"), AUTH_KEY_ENCRYPTION_KEY=""
    )
    assert_one_line_error(refused, "key-encryption-key file")
    assert not (folder / "fresh").exists()


def test_a_backup_does_not_overwrite_a_file(database_url: str, folder: Path) -> None:
    (folder / "taken").write_text("keep me")
    assert_one_line_error(
        run_cli("backup", str(folder / "taken"), AUTH_DATABASE_URL=database_url), "exists"
    )
    assert (folder / "taken").read_text() == "keep me"
