"""``python -m bench.soak --minutes 10``: a long mixed run against one served auth-service.

It starts an embedded PostgreSQL in a temporary folder, one ``auth-service serve`` on it
(one worker) and runs ``soak_load`` (validate with cached and fresh tokens, sessions from
login to logout, refreshes, 401 noise, key rotations), sampling memory, the pool and the
server's connections every ``--interval`` seconds. It passes when memory levels off (the
highest RSS of the second half exceeds the first half's by at most ``--memory-growth-mib``),
no answer was other than expected, validate counted no error, and PostgreSQL served exactly
the pool's connections at every sample. Exit status: 0 passed, 1 failed, 2 usage error.

Tokens live 60 s and the cache holds 2,000 of them, so that expiries, evictions and
revocations all reach their steady state within the first minute: growth after that would
be a leak, not a cache filling. Logins may wait up to 30 s for a hashing thread (see
``SOAK_ENV``). Resident memory is sampled while no login runs (argon2id maps 64 MiB for each
hash and unmaps it after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from . import BenchError
from .measure import progress
from .servers import add_user, auth_service
from .soak_load import MIB, SoakResult, run_soak

# The soak looks for leaks, not for the admission queue's refusals: on a machine shared with
# other work the low-priority hashes can take seconds each, and its few logins may wait.
SOAK_ENV = {
    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "60",
    "AUTH_TOKEN_CACHE_MAX_ENTRIES": "2000",
    "AUTH_LOGIN_QUEUE_WAIT_SECONDS": "30",
}
USERS = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10, help="length of the run (default 10)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples (10)")
    parser.add_argument(
        "--rotate-every", type=float, default=120, help="seconds between key rotations (120)"
    )
    parser.add_argument(
        "--memory-growth-mib", type=float, default=8, help="allowed RSS growth (see above; 8)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 600 or not 1 <= args.interval <= 600 or args.rotate_every <= 0:
        parser.error("--minutes in (0, 600], --interval in [1, 600], --rotate-every > 0")
    return args


def verdict(result: SoakResult, growth_mib: float) -> list[str]:
    """Why the run failed (empty: it passed)."""
    failures = [f"unexpected answer: {error}" for error in result.errors[:20]]
    if len(result.errors) > 20:
        failures.append(f"... {len(result.errors) - 20} more unexpected answers")
    if result.validate_errors:
        failures.append(f"validate counted {result.validate_errors:.0f} error outcomes")
    failures += [f"connection leak: {problem}" for problem in result.leaked_connections()]
    growth = result.memory_growth_bytes() / MIB
    if growth > growth_mib:
        failures.append(f"memory grew {growth:.1f} MiB in the second half (bound {growth_mib:g})")
    return failures


def report(result: SoakResult) -> str:
    """The samples and the outcomes, as a plain table."""
    lines = ["seconds  RSS MiB  pool (idle)  server connections  requests"]
    lines += [
        f"{s.seconds:7.0f}  {s.rss_bytes / MIB:7.1f}  {s.pool_size:4d} ({s.pool_idle:2d})  "
        f"{s.server_connections:18d}  {s.requests:8,}"
        for s in result.samples
    ]
    lines.append("")
    lines += [f"{count:9,}  {kind}" for kind, count in sorted(result.outcomes.items())]
    lines.append(f"key rotations: {result.rotations}")
    lines.append(
        f"memory growth, second half over first: {result.memory_growth_bytes() / MIB:.1f} MiB"
    )
    return "\n".join(lines)


def _soak(args: argparse.Namespace, workdir: Path) -> SoakResult:
    from auth_service.db import embedded_server

    server = embedded_server(workdir / "data")
    try:
        database_url = server.get_uri()
        # With a database URL the service wants a key-encryption key: one for this run only.
        kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        env = {**SOAK_ENV, "AUTH_DATABASE_URL": database_url, "AUTH_KEY_ENCRYPTION_KEY": kek}
        with auth_service(workdir, name="auth-service-soak", extra_env=env) as service:
            users = [(f"soak{n}", secrets.token_urlsafe(18)) for n in range(USERS + 1)]
            for name, password in users:
                add_user(service, name, password, "soak")

            def rotate() -> None:
                done = subprocess.run(
                    [service.executable, "keys", "rotate"],
                    env=service.env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                if done.returncode != 0:
                    raise BenchError(f"keys rotate failed: {done.stderr.strip()}")

            progress(f"soak: {args.minutes:g} minutes, a sample every {args.interval:g} s")
            return asyncio.run(
                run_soak(
                    f"http://127.0.0.1:{service.port}",
                    service.pid,
                    database_url,
                    users[:-1],
                    users[-1],
                    seconds=args.minutes * 60,
                    interval=args.interval,
                    rotate_every=args.rotate_every,
                    rotate=rotate,
                    progress=progress,
                )
            )
    finally:
        server.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="auth-soak-") as tmp:
            result = _soak(args, Path(tmp))
    except BenchError as e:
        print(f"bench.soak: error: {e}", file=sys.stderr)
        return 1
    print(report(result))
    failures = verdict(result, args.memory_growth_mib)
    for failure in failures:
        print(f"FAIL {failure}")
    print("soak: FAIL" if failures else "soak: PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
