"""Loads and their comparison: targets compared in one scenario run in alternating rounds.

On a shared 2-core machine other work comes and goes; measuring A B A B rather than A A B B
lets a disturbance hit both sides of a ratio, and the spread of the per-round ratios shows how
noisy the run was.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import BenchError
from .wrk import WrkResult, run_wrk

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """How long and how hard every load runs."""

    duration: int  # seconds measured
    warmup: int  # seconds of an unrecorded run before each measured one (0: none)
    connections: int
    rounds: int
    threads: int = 1


@dataclass(frozen=True, slots=True)
class Load:
    """One thing to load with wrk."""

    name: str
    url: str
    headers: tuple[str, ...] = ()
    script: Path | None = None
    script_args: tuple[str, ...] = ()
    connections: int | None = None  # None: the run's setting


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def measure(
    wrk: str, load: Load, settings: LoadSettings, *, duration: int | None = None
) -> WrkResult:
    """A warm-up run (unless disabled), then the measured one; any non-2xx answer fails."""
    seconds = duration or settings.duration
    connections = load.connections or settings.connections
    progress(f"{load.name}: {settings.warmup} s warm-up, {seconds} s measured")

    def run(length: int) -> WrkResult:
        return run_wrk(
            wrk,
            load.url,
            duration=length,
            connections=connections,
            threads=settings.threads,
            headers=load.headers,
            script=load.script,
            script_args=load.script_args,
        )

    if settings.warmup:
        run(settings.warmup)
    result = run(seconds)
    check(load.name, result)
    return result


def check(name: str, result: WrkResult) -> None:
    """A fast refusal is not a result: any non-2xx answer stops the benchmark."""
    if result.non_2xx:
        raise BenchError(f"{name}: {result.non_2xx} of {result.requests} answers were not 2xx")
    if result.socket_errors:
        progress(f"warning: {name}: {result.socket_errors} socket errors")


def compare(wrk: str, loads: list[Load], settings: LoadSettings) -> dict[str, list[WrkResult]]:
    """Each load once per round, for ``settings.rounds`` rounds; each round starts one load
    further on (A B C, B C A, ...), so that no load always runs right after another."""
    results: dict[str, list[WrkResult]] = {load.name: [] for load in loads}
    for number in range(settings.rounds):
        if settings.rounds > 1:
            progress(f"round {number + 1} of {settings.rounds}")
        shift = number % len(loads)
        for load in loads[shift:] + loads[:shift]:
            results[load.name].append(measure(wrk, load, settings))
    return results


def ratios(numerator: list[WrkResult], denominator: list[WrkResult]) -> list[float]:
    """Requests/s of ``numerator`` over ``denominator``, round by round."""
    return [
        n.requests_per_second / d.requests_per_second
        for n, d in zip(numerator, denominator, strict=True)
    ]
