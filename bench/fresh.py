"""The scenarios that send tokens the service has never seen: fresh, memory.

Their tokens come from ``bench.mint`` (the service's own key and claims); wrk sends each of
them once, with ``scripts/tokens.lua``, so every request verifies a signature.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass

from . import BenchError
from .measure import SCRIPTS, check, progress
from .processes import resident_bytes
from .report import Row, Target, ratio_text
from .scenarios import Run
from .servers import PROJECT_ROOT, AuthService, auth_service, check_validate, metric_values
from .wrk import WrkResult, run_wrk

FRESH_RATIO = 0.7
FRESH_MAX_SECONDS = 5  # each round needs its own tokens: keep the files reasonable
MEMORY_TOKENS = 100_000  # the default bound of the cache, AUTH_TOKEN_CACHE_MAX_ENTRIES
MEMORY_SMOKE_TOKENS = 1_000
MEMORY_LIMIT_BYTES = 150 * 1024 * 1024
MIB = 1024 * 1024
_MISSES = 'auth_token_cache_total{result="miss"}'


@dataclass(frozen=True, slots=True)
class Minted:
    """Tokens from ``bench.mint`` and the in-process verification rates it measured."""

    tokens: list[str]
    pyjwt_per_second: float
    service_per_second: float
    ecdsa_per_second: float


def mint(
    run: Run,
    service: AuthService,
    name: str,
    *,
    count: int = 0,
    seconds: float = 0,
    one_user_per_token: bool = False,
) -> Minted:
    """``count`` fresh tokens, or enough for ``seconds`` of fresh requests."""
    out = run.workdir / f"{name}.tokens"
    amount = ["--count", str(count)] if count else ["--seconds", str(seconds)]
    if one_user_per_token:
        amount.append("--one-user-per-token")
    verify_seconds = "0.3" if run.smoke else "1.5"
    progress(f"{name}: signing tokens, timing ES256 verification in-process")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.mint",
            "--username",
            run.username,
            "--out",
            str(out),
            "--verify-seconds",
            verify_seconds,
            *amount,
        ],
        env=service.env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"bench.mint failed ({result.returncode}): {result.stderr.strip()}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    tokens = out.read_text(encoding="ascii").split()
    out.unlink()
    return Minted(
        tokens,
        figures["pyjwt_verifications_per_second"],
        figures["service_verifications_per_second"],
        figures["ecdsa_verifications_per_second"],
    )


def send_once(
    run: Run, service: AuthService, name: str, tokens: list[str], seconds: int
) -> WrkResult:
    """One wrk run of ``seconds`` that sends each of ``tokens`` at most once, in order."""
    path = run.workdir / f"{name}.sent"
    path.write_text("\n".join(tokens) + "\n", encoding="ascii")
    result = run_wrk(
        run.wrk,
        run.validate_url(service),
        duration=seconds,
        connections=run.load.connections,
        threads=1,  # one Lua state: each token once
        script=SCRIPTS / "tokens.lua",
        script_args=(str(path),),
    )
    check(name, result)
    path.unlink()
    return result


def fresh(run: Run) -> float:
    """Target 3: every request a token never seen before, against PyJWT's in-process rate.

    Returns the measured fresh requests/s (the memory scenario sizes its runs with it)."""
    seconds = min(run.load.duration, FRESH_MAX_SECONDS)
    minted = mint(run, run.service, "fresh", seconds=seconds * run.load.rounds)
    per_round = len(minted.tokens) // run.load.rounds
    results: list[WrkResult] = []
    repeats = 0
    for number in range(run.load.rounds):
        progress(f"fresh tokens: round {number + 1} of {run.load.rounds}, {seconds} s")
        tokens = minted.tokens[number * per_round : (number + 1) * per_round]
        before = metric_values(run.service)
        result = send_once(run, run.service, "fresh", tokens, seconds)
        after = metric_values(run.service)
        misses = after.get(_MISSES, 0) - before.get(_MISSES, 0)
        # wrk does not count the answers still in flight when it stops: misses may be more.
        repeats += max(0, result.requests - int(misses))
        if result.requests >= len(tokens):
            progress("warning: fresh tokens ran out; requests/s is underestimated")
        results.append(result)
    per_round_ratios = [r.requests_per_second / minted.pyjwt_per_second for r in results]
    rows = run.report.rows
    rows.append(Row("fresh", "PyJWT ES256 verify, in-process, 1 core", minted.pyjwt_per_second))
    rows.append(
        Row(
            "fresh",
            "ECDSA P-256 signature check alone, 1 core",
            minted.ecdsa_per_second,
            note="OpenSSL via cryptography, no JWT work",
        )
    )
    rows.append(
        Row(
            "fresh",
            "verify_access_token, in-process, 1 core",
            minted.service_per_second,
            note="the service's full check",
        )
    )
    rows.append(
        Row.from_rounds(
            "fresh",
            "validate, every token fresh",
            results,
            f"{repeats} cache hits" if repeats else "every request a cache miss",
        )
    )
    ratio = statistics.median(per_round_ratios)
    ecdsa_ratios = [r.requests_per_second / minted.ecdsa_per_second for r in results]
    run.report.targets.append(
        Target(
            "3",
            "fresh tokens",
            ratio_text(per_round_ratios) + " of PyJWT",
            f">= {FRESH_RATIO}x",
            run.judged(ratio >= FRESH_RATIO),
            f"against the ECDSA check alone: {ratio_text(ecdsa_ratios)}",
        )
    )
    return Row.from_rounds("fresh", "", results).requests_per_second or 0.0


def memory(run: Run, fresh_rate: float | None) -> None:
    """Target 5: resident memory with a full cache, and the cache's bound under a flood.

    Twice: with tokens of the benchmark's one user (a user's tokens share their strings in
    the cache), and with a made-up user for every token (nothing to share: the worst case).
    """
    bound = MEMORY_SMOKE_TOKENS if run.smoke else MEMORY_TOKENS
    for label, one_user_per_token in (("5a", False), ("5b", True)):
        whose = "one user per token" if one_user_per_token else "one user"
        full, flood_entries = _memory(run, fresh_rate, bound, whose, one_user_per_token)
        run.report.targets.append(
            Target(
                label,
                f"memory, {whose}",
                f"{full / MIB:.0f} MiB; {flood_entries:,.0f} entries after flood",
                f"< {MEMORY_LIMIT_BYTES // MIB} MiB; <= {bound:,} entries",
                run.judged(full < MEMORY_LIMIT_BYTES and flood_entries <= bound),
            )
        )


def _memory(
    run: Run, fresh_rate: float | None, bound: int, whose: str, one_user_per_token: bool
) -> tuple[int, float]:
    """RSS with ``bound`` cached tokens; cache entries after half as many more."""
    flood = bound // 2
    extra = {"AUTH_TOKEN_CACHE_MAX_ENTRIES": str(bound)}
    with auth_service(run.workdir, name="auth-service-memory", extra_env=extra) as service:
        check_validate(service, run.token, run.username)
        minted = mint(
            run, service, "memory", count=bound + flood, one_user_per_token=one_user_per_token
        )
        rate = fresh_rate or minted.pyjwt_per_second / 2
        idle = resident_bytes(service.pid)
        _send_all(run, service, minted.tokens[:bound], rate)
        full_entries = metric_values(service)["auth_token_cache_entries"]
        full = resident_bytes(service.pid)
        _send_all(run, service, minted.tokens[bound:], rate)
        flood_entries = metric_values(service)["auth_token_cache_entries"]
        flooded = resident_bytes(service.pid)
    if full_entries != bound:
        raise BenchError(f"memory: {full_entries:,.0f} cache entries, not {bound:,}")
    run.report.rows += [
        Row("memory", f"{whose}: RSS after start-up", note=f"{idle / MIB:.1f} MiB"),
        Row("memory", f"{whose}: RSS, {bound:,} cached tokens", note=f"{full / MIB:.1f} MiB"),
        Row(
            "memory",
            f"{whose}: RSS after {flood:,} more tokens",
            note=f"{flooded / MIB:.1f} MiB, {flood_entries:,.0f} entries (bound {bound:,})",
        ),
    ]
    return full, flood_entries


def _send_all(run: Run, service: AuthService, tokens: list[str], rate: float) -> None:
    """Send every token once (wrk runs until all of them got an answer)."""
    remaining = tokens
    while remaining:
        seconds = math.ceil(len(remaining) / rate * 1.3) + 1
        progress(f"memory: sending {len(remaining):,} distinct tokens (up to {seconds} s)")
        before = metric_values(service).get(_MISSES, 0)
        send_once(run, service, "memory", remaining, seconds)
        sent = int(metric_values(service).get(_MISSES, 0) - before)
        if sent <= 0:
            raise BenchError("memory: no token was verified")
        remaining = remaining[sent:]
