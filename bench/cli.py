"""``python -m bench``: the options, the order of the scenarios, the exit status.

Exit status: 0 measured (whatever the targets' results), 1 the benchmark failed (a server, a
check or wrk), 2 usage error or wrk missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

from . import BenchError
from .flood import login
from .fresh import fresh, memory
from .measure import LoadSettings, progress
from .processes import stop_embedded_postgres
from .proxies import find_nginx, find_traefik
from .report import Report, format_table, write_json
from .scenarios import Run, direct, traefik, workers
from .servers import (
    add_user,
    auth_service,
    baseline_server,
    check_validate,
    data_dir,
)
from .servers import (
    login as log_in,
)
from .wrk import INSTALL_HINT, find_wrk, wrk_version

USERNAME = "benchuser"
GROUP = "bench"
# In the order they run: memory sizes its runs with the rate that fresh measured.
SCENARIOS = ("direct", "traefik", "fresh", "workers", "memory", "login")
# A scenario must end within the lifetime of the token it starts with (900 s by default).
MAX_SCENARIO_SECONDS = 800
MAX_DURATION = 600
MAX_WARMUP = 60
PACKAGES = (
    "auth-service",
    "uvicorn",
    "uvloop",
    "httptools",
    "fastapi",
    "starlette",
    "prometheus-client",
    "PyJWT",
    "cryptography",
    "argon2-cffi",
)


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


def _scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}"
        )
    return [name for name in SCENARIOS if name in names]


def _auth_setting(text: str) -> tuple[str, str]:
    """An argparse type: ``AUTH_NAME=VALUE``, as the service reads it from its environment."""
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("AUTH_") or not name[5:].replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"not AUTH_NAME=VALUE: {text!r}")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Validate's throughput, latency and memory against the targets of the "
        "performance issue, each as a ratio measured in the same run.",
    )
    parser.add_argument(
        "--scenario",
        type=_scenarios,
        default=list(SCENARIOS),
        metavar="LIST",
        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check that every scenario works: 1 s runs, no warm-up, one round, small token "
        "counts; figures are printed but not judged",
    )
    parser.add_argument(
        "--duration",
        type=_bounded_int(1, MAX_DURATION),
        default=10,
        metavar="SECONDS",
        help="length of each measured run (default 10; fresh tokens: at most 5)",
    )
    parser.add_argument(
        "--warmup",
        type=_bounded_int(0, MAX_WARMUP),
        default=2,
        metavar="SECONDS",
        help="unrecorded run before each measured one (default 2)",
    )
    parser.add_argument(
        "--rounds",
        type=_bounded_int(1, 20),
        default=2,
        metavar="N",
        help="alternating runs of the loads compared in one scenario; medians are shown "
        "(default 2)",
    )
    parser.add_argument(
        "--connections",
        type=_bounded_int(1, 10_000),
        default=64,
        metavar="N",
        help="open connections of wrk (default 64), on one wrk thread",
    )
    parser.add_argument(
        "--service-env",
        type=_auth_setting,
        action="append",
        default=[],
        metavar="AUTH_NAME=VALUE",
        help="a setting of the login scenario's default service, to measure it changed "
        "(e.g. AUTH_PASSWORD_HASH_YIELD=0); repeatable",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.rounds = 1, 0, 1
    # The proxy scenario runs three loads per round.
    if 3 * args.rounds * (args.duration + args.warmup) > MAX_SCENARIO_SECONDS:
        parser.error(
            f"3 x rounds x (duration + warm-up) must stay under {MAX_SCENARIO_SECONDS} s, "
            "the token's lifetime"
        )
    return args


def _package_version(name: str) -> str:
    """The installed version of ``name``; ``BenchError`` when this Python lacks it."""
    try:
        return version(name)
    except PackageNotFoundError as e:
        raise BenchError(
            f"{name} is not installed for {sys.executable}; run the benchmark with the "
            "project's environment (pip install -e .)"
        ) from e


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")


def _tool_version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _environment(wrk: str) -> dict[str, object]:
    environment: dict[str, object] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        **{name: _package_version(name) for name in PACKAGES},
        "wrk": wrk_version(wrk),
    }
    nginx, traefik_binary = find_nginx(), find_traefik()
    if nginx:
        environment["nginx"] = _tool_version([nginx, "-v"])
    if traefik_binary:
        environment["traefik"] = _tool_version([traefik_binary, "version"])
    return environment


def run(wrk: str, args: argparse.Namespace) -> Report:
    """Start the service and the baseline, run the chosen scenarios, stop everything."""
    load = LoadSettings(args.duration, args.warmup, args.connections, args.rounds)
    report = Report(
        settings={
            "scenarios": args.scenario,
            "smoke": args.smoke,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "wrk_threads": load.threads,
        },
        environment=_environment(wrk),
    )
    if args.smoke:
        report.notes.append("smoke run: the figures are too short to judge any target")
    for name, value in args.service_env:
        report.notes.append(f"the login scenario's default service ran with {name}={value}")
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        workdir = Path(tmp)
        try:
            progress("starting auth-service (embedded PostgreSQL) and the bare ASGI app")
            with auth_service(workdir) as service, baseline_server(workdir) as baseline_port:
                password = secrets.token_urlsafe(18)
                add_user(service, USERNAME, password, GROUP)
                context = Run(
                    wrk,
                    load,
                    workdir,
                    service,
                    baseline_port,
                    USERNAME,
                    password,
                    "",
                    args.smoke,
                    report,
                    dict(args.service_env),
                )
                fresh_rate = None
                for name in args.scenario:
                    progress(f"scenario {name}")
                    # A new token for each scenario, so that none outlives its token.
                    context.token = log_in(service, USERNAME, password)
                    check_validate(service, context.token, USERNAME)
                    if name == "direct":
                        direct(context)
                    elif name == "traefik":
                        traefik(context)
                    elif name == "fresh":
                        fresh_rate = fresh(context)
                    elif name == "workers":
                        workers(context)
                    elif name == "memory":
                        memory(context, fresh_rate)
                    else:
                        login(context)
        finally:
            stop_embedded_postgres(data_dir(workdir) / "pgdata")
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
    if args.json is not None:
        write_json(report, args.json)
        print(f"results written to {args.json}")
    return 0
