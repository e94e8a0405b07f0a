"""``auth-service check-status``: is a running service live, ready, and exporting metrics?

Five components, from three requests: ``live`` (``/health/live``), ``ready``, ``database`` and
``keys`` (``/health/ready`` and its ``checks``), and ``metrics`` (``/metrics`` with
``auth_validate_requests_total``). Prints a table and a last line, ``healthy`` or
``unhealthy: <components>``; exit status 0 when healthy, 1 otherwise. A service that does not
answer at all is unhealthy in every component, not an error.

``assess`` and ``table`` are pure; ``probe`` does the requests. The command is ``cli/health.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import AuthServiceError

COMPONENTS = ("live", "ready", "database", "keys", "metrics")
VALIDATE_METRIC = "auth_validate_requests_total"
_TIMEOUT_SECONDS = 5.0
_DETAIL_WIDTH = 70
# Listening on every address: connect over loopback.
_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


class StatusError(AuthServiceError):
    """The check cannot run (an invalid configuration to take the default URL from)."""


@dataclass(frozen=True)
class Answer:
    """What one endpoint said: a status and body, or why there was no HTTP answer."""

    status: int | None
    body: str = ""
    problem: str = ""  # set when status is None


@dataclass(frozen=True)
class Check:
    """The state of one component."""

    component: str
    healthy: bool
    detail: str


def assess(live: Answer, ready: Answer, metrics: Answer) -> list[Check]:
    """The five checks, in ``COMPONENTS`` order, from the three answers."""
    checks = [
        Check("live", live.status == 200, _describe(live)),
        Check("ready", ready.status == 200, _describe(ready)),
    ]
    flags = _ready_checks(ready)
    for component, good, bad in (
        ("database", "answers", "does not answer"),
        ("keys", "loaded", "not loaded"),
    ):
        if flags is None:
            checks.append(Check(component, False, "unknown: /health/ready gave no checks"))
        else:
            state = flags.get(component) is True
            checks.append(Check(component, state, good if state else bad))
    if metrics.status == 200 and VALIDATE_METRIC in metrics.body:
        checks.append(Check("metrics", True, f"{_describe(metrics)}, {VALIDATE_METRIC} present"))
    elif metrics.status == 200:
        checks.append(Check("metrics", False, f"200 but no {VALIDATE_METRIC}"))
    else:
        checks.append(Check("metrics", False, _describe(metrics)))
    return checks


def table(checks: list[Check]) -> list[str]:
    """The printed lines; the last is ``healthy`` or ``unhealthy: a, b``."""
    lines = [f"{'COMPONENT':10} {'STATUS':6} DETAIL"]
    for check in checks:
        detail = check.detail
        if len(detail) > _DETAIL_WIDTH:
            detail = detail[: _DETAIL_WIDTH - 3] + "..."
        lines.append(f"{check.component:10} {'ok' if check.healthy else 'FAIL':6} {detail}")
    failing = [c.component for c in checks if not c.healthy]
    lines.append("unhealthy: " + ", ".join(failing) if failing else "healthy")
    return lines


def _describe(answer: Answer) -> str:
    if answer.status is None:
        return answer.problem
    return f"HTTP {answer.status}"


def _ready_checks(ready: Answer) -> dict[str, Any] | None:
    if ready.status is None:
        return None
    try:
        body = json.loads(ready.body)
    except ValueError:
        return None
    checks = body.get("checks") if isinstance(body, dict) else None
    return checks if isinstance(checks, dict) else None


# -- command ----------------------------------------------------------------------------------


def default_url() -> str:
    """``http://AUTH_HOST:AUTH_PORT`` of the local configuration (127.0.0.1:8080 by default)."""
    from pydantic import ValidationError

    from .settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"AUTH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise StatusError(f"invalid configuration: {problems}") from e
    host = _WILDCARD_HOSTS.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def probe(url: str) -> list[Answer]:
    """GET live, ready and metrics; once live gets no answer, the others are not tried."""
    try:
        import httpx
    except ImportError as e:
        raise StatusError("check-status needs the httpx package: pip install httpx") from e
    answers: list[Answer] = []
    with httpx.Client(base_url=url, timeout=_TIMEOUT_SECONDS) as client:
        for path in ("/health/live", "/health/ready", "/metrics"):
            if answers and answers[0].status is None:
                answers.append(Answer(None, problem="not tried: /health/live did not answer"))
                continue
            try:
                response = client.get(path)
            except httpx.HTTPError as e:
                answers.append(Answer(None, problem=f"no answer: {str(e) or type(e).__name__}"))
            else:
                answers.append(Answer(response.status_code, response.text))
    return answers
