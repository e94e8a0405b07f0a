"""The ``login`` scenario: validate alone, and validate while a login flood runs.

Two services side by side, loaded in alternating rounds: one with the default settings but
for the throttle (one low-priority hashing thread per two cores, the bounded admission
queue), and one configured as the service was before the queue existed ("unbounded": a
hashing thread per core at the process's priority, a queue nothing fills). Validate is
measured alone, then during a flood of 4 logins in flight on each (the load the scenario
always used), then during an overload of 32 on the bounded one, most of them refused at
once. The ratios compare figures of the same run.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from .client import HOST
from .measure import SCRIPTS, Load, measure, progress, ratios
from .report import Row, Target, ratio_text
from .scenarios import Run
from .servers import AuthService, auth_service, check_validate
from .wrk import WrkResult, parse_wrk_output, start_wrk, wait_wrk

VALIDATE_RATIO = 0.8  # validate's requests/s during the flood, over alone
P99_FACTOR = 2.0  # validate's p99 during the flood, over alone
FLOOD_CONNECTIONS = 4  # logins in flight at once, as before the queue: more than the threads
OVERLOAD_CONNECTIONS = 32  # far more than the threads and the queue can take in a few seconds
# Every login of the flood is the benchmark user's, from one address, with the right
# password: the throttle counts each attempt until its hash is checked, so 32 in flight
# would lock the account. The flood measures the hashing, not the throttle.
NO_THROTTLE = {
    "AUTH_THROTTLE_ACCOUNT_FAILURES": "1000",
    "AUTH_THROTTLE_ACCOUNT_BUDGET": "100000",
    "AUTH_THROTTLE_ADDRESS_FAILURES": "100000",
}
UNBOUNDED = {
    **NO_THROTTLE,
    "AUTH_PASSWORD_HASH_WORKERS": str(os.cpu_count() or 2),
    "AUTH_PASSWORD_HASH_NICE": "0",
    "AUTH_PASSWORD_HASH_YIELD": "0",
    "AUTH_LOGIN_QUEUE_SIZE": "10000",
    "AUTH_LOGIN_QUEUE_WAIT_SECONDS": "60",
}


@dataclass(frozen=True, slots=True)
class Flood:
    """One run of validate beside a login flood."""

    validate: WrkResult
    logins: WrkResult  # every answer: 200 signed in, 503 refused at once
    seconds: int

    @property
    def signed_in_per_second(self) -> float:
        return (self.logins.requests - self.logins.non_2xx) / self.seconds

    @property
    def refused_per_second(self) -> float:
        return self.logins.non_2xx / self.seconds


_LABELS = {
    "bounded": f"{FLOOD_CONNECTIONS} logins at once, bounded queue (default)",
    "unbounded": f"{FLOOD_CONNECTIONS} logins at once, unbounded (before)",
    "overload": f"{OVERLOAD_CONNECTIONS} logins at once, bounded queue (default)",
}


def login(run: Run) -> None:
    """Target 6: validate during a login flood against validate alone, bounded and not."""
    with (
        auth_service(
            run.workdir, name="auth-service-bounded", extra_env={**NO_THROTTLE, **run.service_env}
        ) as new,
        auth_service(run.workdir, name="auth-service-unbounded", extra_env=UNBOUNDED) as old,
    ):
        check_validate(new, run.token, run.username)
        check_validate(old, run.token, run.username)
        alone: list[WrkResult] = []
        floods: dict[str, list[Flood]] = {kind: [] for kind in _LABELS}
        for number in range(run.load.rounds):
            progress(f"login flood: round {number + 1} of {run.load.rounds}")
            steps = ["alone", *_LABELS]
            shift = number % len(steps)
            for step in steps[shift:] + steps[:shift]:
                if step == "alone":
                    alone.append(measure(run.wrk, _validate(run, new), run.load))
                elif step == "unbounded":
                    floods[step].append(_flood(run, old))
                else:
                    connections = OVERLOAD_CONNECTIONS if step == "overload" else FLOOD_CONNECTIONS
                    floods[step].append(_flood(run, new, connections))
    _report(run, alone, floods)


def _validate(run: Run, service: AuthService) -> Load:
    return Load("validate", run.validate_url(service), headers=(run.bearer,))


def _flood(run: Run, service: AuthService, connections: int = FLOOD_CONNECTIONS) -> Flood:
    """Validate for the run's duration while ``connections`` logins hammer ``service``."""
    seconds = run.load.duration
    progress(f"{connections} logins at once on port {service.port}")
    logins = start_wrk(
        [
            run.wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds + run.load.warmup}s",
            "--latency",
            "-s",
            str(SCRIPTS / "login.lua"),
            f"http://{HOST}:{service.port}",
            "--",
            run.username,
            run.password,
        ]
    )
    try:
        validate = measure(run.wrk, _validate(run, service), run.load)
    finally:
        report = wait_wrk(logins, seconds + run.load.warmup)
    return Flood(validate, parse_wrk_output(report), seconds + run.load.warmup)


def _report(run: Run, alone: list[WrkResult], floods: dict[str, list[Flood]]) -> None:
    rows = run.report.rows
    rows.append(Row.from_rounds("login", "validate alone (cached token)", alone))
    for kind, label in _LABELS.items():
        during = [f.validate for f in floods[kind]]
        rows.append(
            Row.from_rounds(
                "login",
                f"validate, {label}",
                during,
                f"{ratio_text(ratios(during, alone))} of alone, "
                f"p99 {_p99_factor(during, alone):.1f}x",
            )
        )
        rows.append(
            Row.from_rounds(
                "login",
                f"POST login, {label}",
                [f.logins for f in floods[kind]],
                f"{statistics.median(f.signed_in_per_second for f in floods[kind]):.1f} "
                f"signed in/s, {statistics.median(f.refused_per_second for f in floods[kind]):,.0f}"
                " refused/s",
            )
        )
    bounded, old = floods["bounded"], floods["unbounded"]
    during = [f.validate for f in bounded]
    per_round = ratios(during, alone)
    factor = _p99_factor(during, alone)
    signed_in = statistics.median(f.signed_in_per_second for f in bounded)
    run.report.targets.append(
        Target(
            "6",
            "login flood",
            f"{ratio_text(per_round)}, p99 {factor:.1f}x, {signed_in:.1f} logins/s",
            f">= {VALIDATE_RATIO}x, p99 <= {P99_FACTOR:g}x, logins > 0",
            run.judged(
                statistics.median(per_round) >= VALIDATE_RATIO
                and factor <= P99_FACTOR
                and signed_in > 0
            ),
            f"validate during {FLOOD_CONNECTIONS} logins at once over validate alone; "
            "unbounded (before): "
            + ratio_text(ratios([f.validate for f in old], alone))
            + f", p99 {_p99_factor([f.validate for f in old], alone):.1f}x",
        )
    )


def _p99_factor(during: list[WrkResult], alone: list[WrkResult]) -> float:
    """The median p99 during the flood over the median p99 alone."""
    return statistics.median(d.p99_ms for d in during) / statistics.median(a.p99_ms for a in alone)
