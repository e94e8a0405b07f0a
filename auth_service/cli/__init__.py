"""The ``auth-service`` command.

One module per command group; each has ``register(commands)``, which adds its subcommands and
sets on each leaf a ``func`` that returns the exit status. A new group is a new module and a
line in ``GROUPS`` (whose order is the order of ``--help``).

Errors a user can make (a duplicate user, an unknown name, an empty password, a database
that cannot be reached) print one line to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from ..errors import AuthServiceError
from . import audit, backup, clients, config, health, keys, serve, trace, user
from .command import CommandError, CommandGroup

__all__ = ["GROUPS", "CommandError", "build_parser", "main"]

GROUPS: tuple[CommandGroup, ...] = (
    serve,
    user,
    clients,
    audit,
    config,
    keys,
    health,
    backup,
    trace,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auth-service",
        description="Authentication gate for reverse proxies. Configured by AUTH_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..logs import configure_logging

    if args.command != "serve":
        configure_logging("WARNING", "text")
    try:
        result: Any = args.func(args)
    except AuthServiceError as e:
        print(f"auth-service: error: {e}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as e:
        print(f"auth-service: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result)
