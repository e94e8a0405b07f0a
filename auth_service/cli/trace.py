"""``auth-service trace-oauth``: play an MCP client against a protected URL, step by step.

For the operator whose client "cannot log in": it needs no settings and no database, only the
URL the client was given and an account to sign in with. It prints one line per step (``ok``
with what was checked, or ``FAIL`` with the problem and a ``fix:`` line), exits 0 when every
step passed and 1 at the first failure; usage errors exit 2. ``--save-trace`` writes every
request and response, redacted, for a bug report. The steps are ``oauth/trace.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .command import CommandError

if TYPE_CHECKING:
    from ..oauth.trace import StepResult
    from .command import Commands


def register(commands: Commands) -> None:
    trace = commands.add_parser(
        "trace-oauth",
        help="walk the OAuth flow of an MCP client against a protected URL, step by step",
        description=(
            "Walk the OAuth flow an MCP client walks against --server-url: the 401, the "
            "resource and server metadata, registration, authorization with PKCE, sign-in and "
            "consent, the code exchange, a request with the token, refresh and revocation. "
            "Exit status: 0 every step passed, 1 a step failed, 2 usage error."
        ),
    )
    trace.add_argument(
        "--server-url",
        required=True,
        type=_absolute_url,
        metavar="URL",
        help="the protected URL, as given to the MCP client",
    )
    trace.add_argument("--username", required=True, metavar="U", help="the account to sign in as")
    password = trace.add_mutually_exclusive_group(required=True)
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    password.add_argument(
        "--password", metavar="P", help="the password (other local users can see it in ps)"
    )
    trace.add_argument(
        "--ca-file",
        type=_trust_also,
        dest="trust",
        metavar="FILE",
        help="PEM CA certificates to trust besides the system's (a private CA)",
    )
    trace.add_argument("--save-trace", type=Path, metavar="FILE", help="write the JSON trace")
    trace.add_argument("--quiet", action="store_true", help="print only the verdict")
    trace.set_defaults(func=trace_command)


def _absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an absolute http(s) URL: {value!r}")
    return value


def _trust_also(ca_file: str) -> ssl.SSLContext:
    """An argparse type: the system's trust store plus the PEM CA certificates of ``ca_file``
    (a file that cannot be read as such is a usage error, exit status 2)."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(f"no such file: {ca_file!r}") from e
    except (OSError, ssl.SSLError) as e:
        raise argparse.ArgumentTypeError(
            f"cannot read {ca_file!r} as PEM CA certificates: {e}"
        ) from e
    return context


def _print_step(result: StepResult) -> None:
    if result.passed:
        print(f"ok   {result.step}: {', '.join(result.checks)}", flush=True)
    else:
        print(f"FAIL {result.step}: {result.problem}", flush=True)
        if result.fix:
            print(f"     fix: {result.fix}", flush=True)


def trace_command(args: argparse.Namespace) -> int:
    from ..oauth.trace import trace_oauth

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise CommandError("the password is empty")
    result = asyncio.run(
        trace_oauth(
            args.server_url,
            args.username,
            password,
            verify=args.trust,
            on_step=None if args.quiet else _print_step,
        )
    )
    if args.save_trace is not None:
        try:
            args.save_trace.write_text(json.dumps(result.document(), indent=2) + "\n")
        except OSError as e:
            raise CommandError(f"cannot write the trace to {args.save_trace}: {e}") from e
    failed = result.failed_step
    if failed is None:
        print(f"passed: an MCP client can sign in to {args.server_url}")
    else:
        print(f"failed at {failed.step}: {failed.problem}")
    if result.client_id is not None and not args.quiet:
        print(
            f"note: the client registered for this trace remains; remove it with "
            f"auth-service client remove {result.client_id}"
        )
    return 0 if failed is None else 1
