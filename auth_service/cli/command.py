"""What every ``auth-service`` command shares: its error, its settings, its database.

A command module registers its subcommands with ``register(commands)``; each leaf parser sets
``func``, which takes the parsed arguments and returns the exit status. ``main`` turns a
``CommandError`` (or any ``AuthServiceError``) into one line on stderr and exit status 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

from pydantic import ValidationError

from ..errors import AuthServiceError
from ..settings import Settings

if TYPE_CHECKING:
    import argparse

    import asyncpg

    # What ``add_subparsers`` returns: where a command module adds its commands.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class CommandGroup(Protocol):
    """A module of commands: ``register`` adds them, each leaf with its ``func``."""

    def register(self, commands: Commands) -> None: ...


class CommandError(AuthServiceError):
    """A command cannot run as asked."""


def load_settings() -> Settings:
    """The AUTH_* settings, or a ``CommandError`` naming every invalid variable."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"AUTH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise CommandError(f"invalid configuration: {problems}") from e


async def with_database(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Run ``work`` on a pool of the configured (or embedded) database, then close it."""
    from ..db import open_database

    async with open_database(settings) as pool:
        return await work(pool)
