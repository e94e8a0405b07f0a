"""``auth-service diagnose`` and ``check-status``: how a running service is doing.

``diagnose`` exits with the verdict on the share of 401s among all decisions:

====  ============  =========================================
0     normal        below 50 % (also: no decisions at all)
1     elevated      50 % up to, not including, 70 %
2     investigate   70 % up to and including 90 %
3     critical      above 90 %
4     error         the file cannot be read, the URL does not answer with our metrics
====  ============  =========================================

``check-status`` exits 0 when every component is healthy, 1 otherwise. The counting and the
judging are ``diagnose.py``, ``verdict.py`` and ``status.py``; here are the commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .command import Commands

DIAGNOSE_ERROR_EXIT = 4


def register(commands: Commands) -> None:
    diagnose = commands.add_parser(
        "diagnose",
        # argparse would print "[--url URL] [FILE]": neither optional nor both allowed.
        usage="%(prog)s [-h] (FILE | - | --url URL)",
        help="explain the share of 401s from a JSON log or a running service's metrics",
        description=(
            "Count validate decisions and their reasons, and give a verdict. "
            "Exit status: 0 normal (<50 % 401s), 1 elevated (50-70 %), "
            "2 investigate (70-90 %), 3 critical (>90 %), 4 input cannot be read."
        ),
    )
    source = diagnose.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="JSON log with DEBUG validate lines; - reads stdin",
    )
    source.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8080")
    diagnose.set_defaults(func=diagnose_command)

    status = commands.add_parser(
        "check-status",
        help="check that a running service is live, ready and exporting metrics",
        description="Exit status 0 when every component is healthy, 1 otherwise.",
    )
    status.add_argument("--url", help="the service's base URL (default http://AUTH_HOST:AUTH_PORT)")
    status.set_defaults(func=check_status_command)


def diagnose_command(args: argparse.Namespace) -> int:
    """Print the report; return the verdict's exit status, or 4 when nothing could be read."""
    from ..diagnose import (
        DiagnoseError,
        fetch_metrics,
        log_lines,
        summarise_log,
        summarise_metrics,
    )
    from ..verdict import report, verdict_of

    try:
        if args.url:
            summary = summarise_metrics(fetch_metrics(args.url))
            source = f"{args.url} /metrics (counts since that process started)"
        else:
            summary = summarise_log(log_lines(args.file))
            source = "stdin" if args.file == "-" else args.file
    except DiagnoseError as e:
        print(f"auth-service: error: {e}", file=sys.stderr)
        return DIAGNOSE_ERROR_EXIT
    print("\n".join(report(summary, source)))
    return verdict_of(summary).exit_status


def check_status_command(args: argparse.Namespace) -> int:
    """Print the table; 0 when every component is healthy, 1 otherwise."""
    from ..status import assess, default_url, probe, table

    url = (args.url or default_url()).rstrip("/")
    live, ready, metrics = probe(url)
    checks = assess(live, ready, metrics)
    print(f"checking {url}")
    print("\n".join(table(checks)))
    return 0 if all(c.healthy for c in checks) else 1
