"""Private keys sealed with a key-encryption key that is not in the database (issue 16, M5).

The attack of the issue, replayed: with nothing but SELECT on the two tables that hold key
material, find a private key and mint a 30-day token for ``root`` in ``admins`` without a
session id. Then the KEK's life: sealing rows written before it existed, a wrong or missing
KEK refused in one line, the embedded database's own KEK file, and a rotation with
``keys rewrap`` while replicas keep serving.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from auth_service.app import AuthServiceApp, create_app
from auth_service.db import load_migrations
from auth_service.errors import ConfigurationError, SealedSecretUnreadable
from auth_service.key_encryption import (
    DATA_DIR_KEY_FILE,
    KeyEncryptionKey,
    KeyRing,
    load_key_ring,
    new_key_text,
    parse_key_text,
)
from auth_service.keys import generate_key
from auth_service.settings import Settings

from .conftest import PASSWORD, TEST_KEK, create_user, login, run_cli, with_database

VALIDATE = "/api/v1/auth/validate"
OTHER_KEK = new_key_text()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """What the issue's attacker minted: 30 days, root in admins, no session id."""
    now = int(time.time())
    header = {"alg": "ES256", "kid": kid, "typ": "at+jwt"}
    claims = {
        "iss": "http://auth.test",
        "aud": "auth-service",
        "sub": "00000000-0000-0000-0000-000000000000",
        "jti": "stolen",
        "preferred_username": "root",
        "groups": ["admins"],
        "iat": now,
        "exp": now + 30 * 86_400,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    s = min(s, order - s)  # the low-S form: the attack must not fail for another reason
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _as_private_key(value: Any) -> ec.EllipticCurvePrivateKey | None:
    """``value`` read as a private key in any of the usual encodings, or None."""
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        return None
    for load in (serialization.load_pem_private_key, serialization.load_der_private_key):
        try:
            key = load(value, password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    return None


@asynccontextmanager
async def reader_role(database_url: str) -> AsyncIterator[str]:
    """A URL for a role that may only SELECT ``signing_keys`` and ``service_secrets``."""
    role, password = "reader_" + secrets.token_hex(4), secrets.token_urlsafe(16)
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await admin.execute(f"GRANT SELECT ON signing_keys, service_secrets TO {role}")
        parts = urlsplit(database_url)
        server = parts.netloc.rpartition("@")[2]  # empty for a Unix socket (?host=...)
        yield urlunsplit(parts._replace(netloc=f"{role}:{password}@{server}"))
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_select_on_the_key_tables_is_not_enough_to_mint_a_token(
    app: AuthServiceApp, client: httpx.AsyncClient, database_url: str
) -> None:
    assert app.runtime is not None
    async with reader_role(database_url) as url:
        reader = await asyncpg.connect(url)
        try:
            rows = [
                *await reader.fetch("SELECT * FROM signing_keys"),
                *await reader.fetch("SELECT * FROM service_secrets"),
            ]
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch("SELECT * FROM users")  # the role is what it claims
        finally:
            await reader.close()
    assert rows
    values = [value for row in rows for value in row.values()]
    stolen = [key for key in map(_as_private_key, values) if key is not None]
    for key in stolen:  # what the attacker did with a key found in clear
        forged = _forge(key, app.runtime.keys.signing.kid)
        response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401, "a token minted from the database was accepted"
    assert stolen == []
    assert app.runtime.csrf_key not in [bytes(v) for v in values if isinstance(v, bytes)]


async def test_a_key_thief_still_cannot_mint_a_long_token_without_a_session(
    app: AuthServiceApp, client: httpx.AsyncClient
) -> None:
    # Even with the private key itself (the KEK leaked too): no sid, or 30 days, is refused.
    assert app.runtime is not None
    key = app.runtime.keys.signing
    forged = _forge(key.private_key, key.kid)
    response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def _fresh_database(server_url: str) -> str:
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return with_database(server_url, name)


async def test_rows_stored_in_clear_before_the_upgrade_are_sealed_at_start_up(
    server_url: str, make_settings: Callable[..., Settings]
) -> None:
    """A database of the previous release (migrations up to 0005, keys in clear) is migrated
    and sealed at start-up; its signing key and CSRF key stay the same."""
    from .conftest import drop_database

    url = await _fresh_database(server_url)
    kid, pem, jwk = generate_key()
    csrf_key = secrets.token_bytes(32)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in load_migrations():
            if migration.version <= 5:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        await conn.execute(
            "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk)"
            " VALUES ($1, 'ES256', $2, $3::jsonb)",
            kid,
            pem,
            json.dumps(jwk),
        )
        await conn.execute(
            "INSERT INTO service_secrets (name, value) VALUES ('csrf', $1)", csrf_key
        )
        application = create_app(make_settings(database_url=url), configure_logs=False)
        async with LifespanManager(application, startup_timeout=30):
            assert application.runtime is not None
            assert application.runtime.keys.signing.kid == kid
            assert application.runtime.csrf_key == csrf_key
        keys = await conn.fetch("SELECT private_pem, private_key_sealed FROM signing_keys")
        stored = await conn.fetch("SELECT value, value_sealed FROM service_secrets")
    finally:
        await conn.close()
        await drop_database(server_url, url)
    assert [(r["private_pem"], r["private_key_sealed"] is not None) for r in keys] == [(None, True)]
    assert [(r["value"], r["value_sealed"] is not None) for r in stored] == [(None, True)]
    assert pem.encode() not in keys[0]["private_key_sealed"]


def test_an_external_database_without_a_kek_refuses_to_start_in_one_line(
    database_url: str,
) -> None:
    for command in (["serve", "--port", "0"], ["keys", "rotate"]):
        result = run_cli(*command, AUTH_DATABASE_URL=database_url, AUTH_KEY_ENCRYPTION_KEY="")
        assert result.returncode == 1, result
        output = (result.stdout + result.stderr).strip()
        assert "Traceback" not in output
        assert output.count("\n") == 0, output
        assert "AUTH_KEY_ENCRYPTION_KEY" in output and "every replica" in output


async def test_a_service_with_another_kek_refuses_to_start_in_one_line(
    app: AuthServiceApp, database_url: str
) -> None:
    assert app.runtime is not None
    result = run_cli(
        "serve",
        "--port",
        "0",
        AUTH_DATABASE_URL=database_url,
        AUTH_KEY_ENCRYPTION_KEY=OTHER_KEK,
        AUTH_LOG_FORMAT="text",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert f"cannot start: cannot decrypt signing_keys/{app.runtime.keys.signing.kid}" in output
    assert load_key_ring(app.settings).current.label in output  # which KEK sealed it
    assert OTHER_KEK not in output and TEST_KEK not in output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"key_encryption_key": "too-short"}, "AUTH_KEY_ENCRYPTION_KEY: not a key-encryption key"),
        ({"key_encryption_key": "é" * 43}, "AUTH_KEY_ENCRYPTION_KEY: not a key-encryption key"),
        (
            {"key_encryption_key": TEST_KEK, "key_encryption_key_file": "/k"},
            "set AUTH_KEY_ENCRYPTION_KEY or AUTH_KEY_ENCRYPTION_KEY_FILE, not both",
        ),
        ({"key_encryption_key_file": "/nonexistent/kek"}, "AUTH_KEY_ENCRYPTION_KEY_FILE: cannot"),
        (
            {"key_encryption_key": TEST_KEK, "key_encryption_key_previous": "x"},
            "AUTH_KEY_ENCRYPTION_KEY_PREVIOUS: not a key-encryption key",
        ),
    ],
)
def test_unusable_kek_settings_are_named_never_shown(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_key_ring(Settings(database_url="postgresql://db/auth", **settings))  # type: ignore[arg-type]
    assert message in str(refused.value)
    assert "too-short" not in str(refused.value)


def test_a_kek_file_and_the_forms_of_a_key_are_read(tmp_path: Path) -> None:
    text = new_key_text()
    raw = base64.urlsafe_b64decode(text + "=")
    (tmp_path / "kek").write_text(text + "\n")
    from_file = load_key_ring(
        Settings(database_url="postgresql://db/auth", key_encryption_key_file=tmp_path / "kek")  # type: ignore[arg-type]
    )
    for spelling in (text, base64.b64encode(raw).decode(), f"  {text}==\n"):
        assert parse_key_text(spelling, "X").id == from_file.current.id
    assert new_key_text() != text and len(text) == 43


def test_a_sealed_value_opens_only_in_its_own_row_and_unaltered() -> None:
    ring = KeyRing(parse_key_text(TEST_KEK, "X"))
    sealed = ring.seal(b"private key", "signing_keys/a")
    assert ring.unseal(sealed, "signing_keys/a") == b"private key"
    with pytest.raises(SealedSecretUnreadable):
        ring.unseal(sealed, "signing_keys/b")  # copied into another row
    for position in range(len(sealed)):
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(SealedSecretUnreadable):
            ring.unseal(bytes(altered), "signing_keys/a")
    other = KeyRing(KeyEncryptionKey.from_bytes(secrets.token_bytes(32)))
    with pytest.raises(SealedSecretUnreadable, match=ring.current.label):
        other.unseal(sealed, "signing_keys/a")  # names the KEK that sealed it
    assert KeyRing(other.current, ring.current).unseal(sealed, "signing_keys/a") == b"private key"


def test_the_embedded_database_gets_a_private_kek_file_of_its_own(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # no URL: the embedded database
    first = load_key_ring(settings)
    path = tmp_path / "data" / DATA_DIR_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_ring(settings).current.id == first.current.id  # made once
    assert [p.name for p in path.parent.iterdir()] == [DATA_DIR_KEY_FILE]  # no leftovers


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[tuple[AuthServiceApp, httpx.AsyncClient]]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            yield application, client


async def validate(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_a_kek_rotation_keeps_every_replica_serving(
    make_settings: Callable[..., Settings], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await create_user(database_url, "alice")
    old, new = (
        make_settings(),
        make_settings(key_encryption_key=OTHER_KEK, key_encryption_key_previous=TEST_KEK),
    )
    async with started(old) as (laggard, on_old), started(new) as (rolled, on_both):
        # 1. Replicas given the new KEK and the old one as previous read the old rows.
        token = await login(on_old, "alice")
        assert await validate(on_both, token) == 200
        assert rolled.runtime is not None and laggard.runtime is not None
        assert rolled.runtime.csrf_key == laggard.runtime.csrf_key

        # 2. keys rewrap seals every row with the new KEK, in one go.
        env = {"AUTH_DATABASE_URL": database_url, "AUTH_KEY_ENCRYPTION_KEY": OTHER_KEK}
        rewrapped = run_cli("keys", "rewrap", AUTH_KEY_ENCRYPTION_KEY_PREVIOUS=TEST_KEK, **env)
        assert rewrapped.returncode == 0, rewrapped.stderr
        assert "re-encrypted 1 signing key(s) and 1 secret(s)" in rewrapped.stdout
        again = run_cli("keys", "rewrap", **env)
        assert "re-encrypted 0 signing key(s) and 0 secret(s)" in again.stdout, again.stderr

        # 3. Both keep serving; the one left on the old KEK says why it cannot reload keys.
        with caplog.at_level(logging.ERROR, logger="auth_service.sync"):
            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute("SELECT pg_notify('auth_keys', '')")  # re-read now
            finally:
                await conn.close()
            await asyncio.wait_for(_logged(caplog, "new signing keys cannot be read"), 10)
        assert await validate(on_old, token) == 200
        assert await validate(on_both, token) == 200
        assert (await on_both.post("/api/v1/auth/login", json=_alice())).status_code == 200

    # 4. The new KEK alone is enough now, and the old one alone no longer is.
    async with started(make_settings(key_encryption_key=OTHER_KEK)) as (_, on_new):
        assert await validate(on_new, token) == 200
    with pytest.raises(SealedSecretUnreadable):
        async with started(old):
            pass


def _alice() -> dict[str, str]:
    return {"username": "alice", "password": PASSWORD}


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    while not any(text in r.getMessage() for r in caplog.records):
        await asyncio.sleep(0.05)


def test_the_readmes_kek_rotation_for_the_embedded_database() -> None:
    folder = Path(tempfile.mkdtemp(prefix="auth-service-test-kek-"))
    try:
        data = folder / "data"
        embedded = {"AUTH_DATA_DIR": str(data), "AUTH_KEY_ENCRYPTION_KEY": ""}
        first = run_cli("keys", "rotate", **embedded)  # a signing key, sealed with the file's KEK
        assert first.returncode == 0, first.stderr
        old_key = data / DATA_DIR_KEY_FILE
        saved = folder / "old-key"
        saved.write_text(old_key.read_text())
        made = run_cli("keys", "generate-kek")
        (folder / "new-key").write_text(made.stdout)
        rewrapped = run_cli(
            "keys",
            "rewrap",
            **embedded,
            AUTH_KEY_ENCRYPTION_KEY_FILE=str(folder / "new-key"),
            AUTH_KEY_ENCRYPTION_KEY_PREVIOUS_FILE=str(old_key),
        )
        assert "re-encrypted 1 signing key(s)" in rewrapped.stdout, rewrapped.stderr
        (folder / "new-key").replace(old_key)
        # The data folder's KEK is the new one now, and the old one no longer opens anything.
        again = run_cli("keys", "rewrap", **embedded)
        assert "re-encrypted 0 signing key(s) and 0 secret(s)" in again.stdout, again.stderr
        stale = run_cli("keys", "rewrap", **embedded, AUTH_KEY_ENCRYPTION_KEY_FILE=str(saved))
        assert stale.returncode == 1
        assert "cannot decrypt signing_keys/" in stale.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
