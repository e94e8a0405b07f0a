"""Run the ``wrk`` load generator and read its ``--latency`` report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import BenchError

INSTALL_HINT = "wrk is not installed; on Debian or Ubuntu: apt-get install wrk"

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_COUNT = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def find_wrk() -> str | None:
    """The path of the ``wrk`` executable, or None."""
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """wrk's version line (``wrk -v`` prints it, and exits 1)."""
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


def run_wrk(
    wrk: str,
    url: str,
    *,
    duration: int,
    connections: int,
    threads: int = 1,
    headers: tuple[str, ...] = (),
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    """Load ``url`` for ``duration`` seconds and return the parsed figures.

    ``script`` is a Lua script (``bench/scripts/``) that builds the requests; ``script_args``
    reach its ``init`` function.
    """
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    return parse_wrk_output(wait_wrk(start_wrk(argv), duration))


def start_wrk(argv: list[str]) -> subprocess.Popen[str]:
    """Start wrk in the background (to load two targets at once), its report piped."""
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_wrk(proc: subprocess.Popen[str], duration: int) -> str:
    """wrk's report, once it has finished; ``BenchError`` when it fails or hangs."""
    try:
        out, err = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        proc.communicate()
        raise BenchError(f"wrk did not finish within {duration + 60} s") from e
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {err.strip()}")
    return out


def parse_wrk_output(text: str) -> WrkResult:
    """The figures of a ``wrk --latency`` report; ``BenchError`` when they are not there."""
    rate = _RATE.search(text)
    count = _COUNT.search(text)
    percentiles = {
        int(p): float(value) * _UNIT_MS[unit] for p, value, unit in _PERCENTILE.findall(text)
    }
    if rate is None or count is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchError(f"cannot read wrk's report:\n{text}")
    non_2xx = _NON_2XX.search(text)
    socket_errors = _SOCKET_ERRORS.search(text)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(count.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )
