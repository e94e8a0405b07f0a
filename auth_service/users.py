"""Users and their groups in PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from .db import Connection, Executor
from .errors import UserError, UserExists, UserNotFound
from .types import User

_SELECT_USER = """
    SELECT u.id::text AS id, u.username, u.password_hash, u.disabled,
           u.created_at, u.updated_at,
           coalesce(array_agg(g.name ORDER BY g.name) FILTER (WHERE g.name IS NOT NULL),
                    '{}') AS groups
    FROM users u
    LEFT JOIN user_groups ug ON ug.user_id = u.id
    LEFT JOIN groups g ON g.id = ug.group_id
"""


# Names end up in X-Auth-* headers and logs: a conservative character set keeps them safe
# there (no commas, spaces, quotes or control characters).
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")


def is_valid_username(username: str) -> bool:
    """True when ``username`` could be the name of a user."""
    return _USERNAME.fullmatch(username) is not None


def check_username(username: str) -> str:
    """``username`` if acceptable; ``UserError`` naming the rule otherwise."""
    if not _USERNAME.fullmatch(username):
        raise UserError(
            f"invalid user name {username!r}: 1-128 characters, letters, digits and ._@+- "
            "starting with a letter or digit"
        )
    return username


def check_group(name: str) -> str:
    """``name`` if acceptable as a group name; ``UserError`` otherwise."""
    if not _GROUP.fullmatch(name):
        raise UserError(
            f"invalid group name {name!r}: 1-128 characters, letters, digits and ._:@/+- "
            "starting with a letter or digit"
        )
    return name


def _to_user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        disabled=row["disabled"],
        groups=tuple(row["groups"]),
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
    )


async def find_user(conn: Executor, username: str) -> User | None:
    """The user called ``username``, or None."""
    row = await conn.fetchrow(_SELECT_USER + " WHERE u.username = $1 GROUP BY u.id", username)
    return _to_user(row) if row else None


async def find_user_by_id(conn: Executor, user_id: str) -> User | None:
    """The user with this id, or None."""
    row = await conn.fetchrow(_SELECT_USER + " WHERE u.id = $1::uuid GROUP BY u.id", user_id)
    return _to_user(row) if row else None


async def get_user(conn: Executor, username: str) -> User:
    """The user called ``username``; ``UserNotFound`` otherwise."""
    user = await find_user(conn, username)
    if user is None:
        raise UserNotFound(username)
    return user


async def list_users(conn: Executor) -> list[User]:
    """Every user, by name."""
    rows = await conn.fetch(_SELECT_USER + " GROUP BY u.id ORDER BY u.username")
    return [_to_user(r) for r in rows]


async def count_users(conn: Executor) -> int:
    """How many users exist."""
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def add_user(conn: Connection, username: str, password_hash: str, groups: list[str]) -> User:
    """Create a user with its groups (created as needed); ``UserExists`` on a duplicate."""
    check_username(username)
    for name in groups:
        check_group(name)
    async with conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id",
                username,
                password_hash,
            )
        except asyncpg.UniqueViolationError as e:
            raise UserExists(username) from e
        for name in sorted(set(groups)):
            group_id = await conn.fetchval(
                """
                INSERT INTO groups (name) VALUES ($1)
                ON CONFLICT (name) DO UPDATE SET name = excluded.name
                RETURNING id
                """,
                name,
            )
            await conn.execute(
                "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)", user_id, group_id
            )
    return await get_user(conn, username)


async def set_disabled(conn: Connection, username: str, disabled: bool) -> None:
    """Disable (or enable) a user; ``UserNotFound`` when there is none."""
    status = await conn.execute(
        "UPDATE users SET disabled = $2, updated_at = now() WHERE username = $1",
        username,
        disabled,
    )
    if status.endswith(" 0"):
        raise UserNotFound(username)


async def set_password_hash(conn: Connection, username: str, password_hash: str) -> None:
    """Replace a user's password hash; ``UserNotFound`` when there is none."""
    status = await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1",
        username,
        password_hash,
    )
    if status.endswith(" 0"):
        raise UserNotFound(username)


def user_as_dict(user: User) -> dict[str, Any]:
    """The JSON shape of ``user show --json`` (includes the hash, for operators)."""
    return {
        "id": user.id,
        "username": user.username,
        "groups": list(user.groups),
        "disabled": user.disabled,
        "password_hash": user.password_hash,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }
