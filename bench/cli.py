"""``python -m bench``: the options, the order of the steps, the exit status.

Exit status: 0 measured, 1 the benchmark failed (a server, a check or wrk), 2 usage error or
wrk missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

from . import BenchError
from .client import HOST
from .report import Measurement, Report, format_table, write_json
from .servers import (
    VALIDATE_PATH,
    AuthService,
    add_user,
    auth_service,
    baseline_server,
    check_validate,
    login,
    token_cache_counts,
)
from .wrk import INSTALL_HINT, find_wrk, run_wrk, wrk_version

USERNAME = "benchuser"
GROUP = "bench"
THREADS = 1
# The token lives 900 s (the service's default); warm-up plus run must end well before.
MAX_DURATION = 600
MAX_WARMUP = 60


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from e
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Requests/s and latency of GET /api/v1/auth/validate (cached token) "
        "against a bare uvicorn ASGI app, both loaded by wrk.",
    )
    parser.add_argument(
        "--duration",
        type=_bounded_int(1, MAX_DURATION),
        default=10,
        metavar="SECONDS",
        help="length of each measured run (default 10)",
    )
    parser.add_argument(
        "--connections",
        type=_bounded_int(1, 10_000),
        default=64,
        metavar="N",
        help="open connections of wrk (default 64)",
    )
    parser.add_argument(
        "--warmup",
        type=_bounded_int(1, MAX_WARMUP),
        default=2,
        metavar="SECONDS",
        help="unrecorded run before each one (default 2)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    return parser.parse_args(argv)


def _package_version(name: str) -> str:
    """The installed version of ``name``; ``BenchError`` when this Python lacks it."""
    try:
        return version(name)
    except PackageNotFoundError as e:
        raise BenchError(
            f"{name} is not installed for {sys.executable}; run the benchmark with the "
            "project's environment (pip install -e .)"
        ) from e


def _measure(
    wrk: str, name: str, url: str, args: argparse.Namespace, headers: tuple[str, ...] = ()
) -> Measurement:
    """A warm-up run, then the measured one; any non-2xx answer fails the benchmark."""
    print(
        f"bench: {name}: {args.warmup} s warm-up, {args.duration} s measured ...", file=sys.stderr
    )
    run_wrk(
        wrk,
        url,
        duration=args.warmup,
        connections=args.connections,
        threads=THREADS,
        headers=headers,
    )
    result = run_wrk(
        wrk,
        url,
        duration=args.duration,
        connections=args.connections,
        threads=THREADS,
        headers=headers,
    )
    if result.non_2xx:
        raise BenchError(f"{name}: {result.non_2xx} of {result.requests} answers were not 2xx")
    if result.socket_errors:
        print(f"bench: warning: {name}: {result.socket_errors} socket errors", file=sys.stderr)
    return Measurement(name=name, url=url, result=result)


def _measure_validate(
    wrk: str, service: AuthService, args: argparse.Namespace, report: Report
) -> None:
    """Create the user, log in, check validate, then load it with the one token."""
    password = secrets.token_urlsafe(18)
    add_user(service, USERNAME, password, GROUP)
    token = login(service, USERNAME, password)
    check_validate(service, token, USERNAME)
    url = f"http://{HOST}:{service.port}{VALIDATE_PATH}"
    before = token_cache_counts(service)
    report.measurements.append(
        _measure(wrk, "validate", url, args, headers=(f"Authorization: Bearer {token}",))
    )
    after = token_cache_counts(service)
    report.token_cache = {k: after[k] - before.get(k, 0.0) for k in after}


def run(wrk: str, args: argparse.Namespace) -> Report:
    """Start both servers, measure the baseline then validate, stop everything."""
    report = Report(
        settings={
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": THREADS,
        },
        environment={
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "uvicorn": _package_version("uvicorn"),
            "auth_service": _package_version("auth-service"),
            "wrk": wrk_version(wrk),
        },
    )
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        workdir = Path(tmp)
        print(
            "bench: starting auth-service (embedded PostgreSQL) and the baseline ...",
            file=sys.stderr,
        )
        with auth_service(workdir) as service, baseline_server(workdir) as baseline_port:
            report.measurements.append(
                _measure(wrk, "baseline", f"http://{HOST}:{baseline_port}/", args)
            )
            _measure_validate(wrk, service, args, report)
    return report


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C does, so every ``finally`` stops its process."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write the JSON when asked."""
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(f"bench: {INSTALL_HINT}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        report = run(wrk, args)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    print(format_table(report))
    if report.token_cache:
        hits = report.token_cache.get("hit", 0.0)
        misses = report.token_cache.get("miss", 0.0)
        print(f"token cache during the validate runs: {hits:,.0f} hits, {misses:,.0f} misses")
    if args.json is not None:
        write_json(report, args.json)
        print(f"results written to {args.json}")
    return 0
