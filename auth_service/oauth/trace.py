"""``trace-oauth``: walk the OAuth flow an MCP client walks, and say where it breaks.

When a client cannot log in, its own error rarely says why (the MCP SDK reports "Server
returned an error response"). This engine plays the client against a protected URL, step by
step, with plain httpx and no redirect following, checking at each step what real clients
check (the same origin and path rules, the issuer compared byte for byte, PKCE S256, ``iss``
on the redirect) and stopping at the first failure with the fix for it:

    probe -> resource_metadata -> server_metadata -> register -> authorize -> login
    (the sign-in form and the consent page, as a person would) -> callback -> token
    -> resource_request -> refresh -> revoke

Every exchange is recorded and redacted (``trace_record.py``) for ``--save-trace``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import httpx

from .trace_discovery import probe, resource_metadata, server_metadata
from .trace_flow import FlowState, StepFailed
from .trace_record import Recorder
from .trace_signin import authorize, login, register
from .trace_tokens import callback, refresh, resource_request, revoke, token

__all__ = ["STEPS", "StepResult", "TraceResult", "trace_oauth"]

REQUEST_TIMEOUT_SECONDS = 10.0
Step = Callable[[FlowState, list[str]], Awaitable[None]]
# In the order a client meets them; each appends what it checked and raises StepFailed.
_STEPS: dict[str, Step] = {
    "probe": probe,
    "resource_metadata": resource_metadata,
    "server_metadata": server_metadata,
    "register": register,
    "authorize": authorize,
    "login": login,
    "callback": callback,
    "token": token,
    "resource_request": resource_request,
    "refresh": refresh,
    "revoke": revoke,
}
STEPS = tuple(_STEPS)


@dataclass(frozen=True)
class StepResult:
    """One step: passed or not, what it checked, and for a failure what to fix."""

    step: str
    passed: bool
    checks: tuple[str, ...]
    duration_ms: float
    problem: str | None = None
    fix: str | None = None


@dataclass
class TraceResult:
    """The outcome of a trace and its redacted log."""

    server_url: str
    username: str
    started_at: datetime
    finished_at: datetime
    steps: list[StepResult]
    trace_log: list[dict[str, Any]]
    client_id: str | None = None

    @property
    def passed(self) -> bool:
        return len(self.steps) == len(STEPS) and all(s.passed for s in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if not s.passed), None)

    def document(self) -> dict[str, Any]:
        """The trace file: ``metadata``, ``sequence_summary`` and ``trace_log``."""
        failed = self.failed_step
        return {
            "metadata": {
                "tool": "auth-service trace-oauth",
                "version": version("auth-service"),
                "server_url": self.server_url,
                "username": self.username,
                "started_at": _utc(self.started_at),
                "finished_at": _utc(self.finished_at),
                "result": "passed" if self.passed else "failed",
                "failed_step": failed.step if failed else None,
            },
            "sequence_summary": [
                {
                    "step": s.step,
                    "result": "passed" if s.passed else "failed",
                    "checks": list(s.checks),
                    "duration_ms": round(s.duration_ms, 1),
                    **({"problem": s.problem, "fix": s.fix} if not s.passed else {}),
                }
                for s in self.steps
            ],
            "trace_log": self.trace_log,
        }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def trace_oauth(
    server_url: str,
    username: str,
    password: str,
    *,
    http: httpx.AsyncClient | None = None,
    verify: ssl.SSLContext | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> TraceResult:
    """Run every step in order until one fails; ``on_step`` hears each result as it comes.
    ``verify``: the certificates the client made here (no ``http``) trusts; by default the
    system's trust store, where an operator's own CAs are installed."""
    recorder = Recorder()
    recorder.redactor.remember(password)
    started = datetime.now(UTC)
    results: list[StepResult] = []
    own_client = http is None
    client = http or httpx.AsyncClient(
        follow_redirects=False,
        timeout=REQUEST_TIMEOUT_SECONDS,
        trust_env=False,
        verify=verify or ssl.create_default_context(),
    )
    state = FlowState(server_url, username, password, client, recorder)
    try:
        for step, run in _STEPS.items():
            checks: list[str] = []
            began = time.monotonic()
            try:
                await run(state, checks)
            except StepFailed as e:
                # A server's error_description could echo what we sent: scrub it too.
                problem, fix = recorder.redactor.text(e.problem), recorder.redactor.text(e.fix)
                result = StepResult(step, False, tuple(checks), _ms(began), problem, fix)
            else:
                result = StepResult(step, True, tuple(checks), _ms(began))
            results.append(result)
            if on_step is not None:
                on_step(result)
            if not result.passed:
                break
    finally:
        if own_client:
            await client.aclose()
    return TraceResult(
        server_url=server_url,
        username=username,
        started_at=started,
        finished_at=datetime.now(UTC),
        steps=results,
        trace_log=recorder.entries(),
        client_id=state.client_id,
    )


def _ms(began: float) -> float:
    return (time.monotonic() - began) * 1000
