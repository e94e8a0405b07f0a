"""``auth-service diagnose``: how many validate requests end in 401, why, and what to do.

It reads the validate decisions of a JSON log (``AUTH_LOG_FORMAT=json``, ``AUTH_LOG_LEVEL=DEBUG``)
from a file or stdin, or the ``auth_validate_requests_total`` counters of a running service's
``/metrics`` (since that process started; one replica). Refusals are counted as the service
counts them: every ``refused`` line is outcome ``unauthorized``, including the few 400s for an
unsafe forwarded path (reason ``invalid_request``) and the 302s that send browsers to login.

Exit status is the verdict on the share of 401s among all decisions:

====  ============  =========================================
0     normal        below 50 % (also: no decisions at all)
1     elevated      50 % up to, not including, 70 %
2     investigate   70 % up to and including 90 %
3     critical      above 90 %
4     error         the file cannot be read, the URL does not answer with our metrics
====  ============  =========================================

Parsing, counting, the verdict and the report are pure functions; only ``run_diagnose`` and
the two readers touch files, stdin or the network.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import AuthServiceError

VALIDATE_LOGGER = "auth_service.validate"
VALIDATE_METRIC = "auth_validate_requests_total"
ERROR_EXIT = 4
TOP = 5
_TIMEOUT_SECONDS = 5.0
# The message of each validate log line, and the metric outcome it counts as.
_OUTCOMES = {
    "allowed": "allowed",
    "refused": "unauthorized",
    "forbidden": "forbidden",
    "validate failed": "error",
}


class DiagnoseError(AuthServiceError):
    """The decisions cannot be read: an unreadable file, or a URL without our metrics."""


class Verdict(StrEnum):
    """How worrying the share of 401s is; the value order is the exit status."""

    NORMAL = "normal"
    ELEVATED = "elevated"
    INVESTIGATE = "investigate"
    CRITICAL = "critical"

    @property
    def exit_status(self) -> int:
        return list(Verdict).index(self)


@dataclass
class Summary:
    """Validate decisions counted from a log or from metrics."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # of unauthorized decisions
    clients: Counter[str] | None = field(default_factory=Counter)  # None: not available
    paths: Counter[str] | None = field(default_factory=Counter)
    lines: int = 0
    skipped: int = 0  # lines that are not a JSON object

    @property
    def decisions(self) -> int:
        return sum(self.outcomes.values())

    @property
    def unauthorized(self) -> int:
        return self.outcomes["unauthorized"]

    @property
    def share_unauthorized(self) -> float:
        """Unauthorized decisions over all decisions, 0 to 1 (0 when there are none)."""
        return self.unauthorized / self.decisions if self.decisions else 0.0

    @property
    def dominant_reason(self) -> str | None:
        return self.reasons.most_common(1)[0][0] if self.reasons else None


def summarise_log(lines: Iterable[str]) -> Summary:
    """Count the validate decisions among JSON log lines; other lines are skipped and counted."""
    clients: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    summary = Summary(clients=clients, paths=paths)
    for line in lines:
        if not line.strip():
            continue
        summary.lines += 1
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            summary.skipped += 1
            continue
        if record.get("logger") != VALIDATE_LOGGER:
            continue
        outcome = _OUTCOMES.get(str(record.get("message")))
        if outcome is None:
            continue
        summary.outcomes[outcome] += 1
        if outcome != "unauthorized":
            continue
        summary.reasons[str(record.get("error_type") or "unknown")] += 1
        if record.get("client_ip"):
            clients[str(record["client_ip"])] += 1
        if record.get("path"):
            paths[str(record["path"])] += 1
    return summary


def summarise_metrics(text: str) -> Summary:
    """Count the decisions in Prometheus exposition text (``auth_validate_requests_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    summary = Summary(clients=None, paths=None)
    found = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != VALIDATE_METRIC:
                    continue
                found = True
                outcome = sample.labels.get("outcome", "unknown")
                # Counters only ever grow by one here; multi-process mode reports floats.
                count = round(sample.value)
                summary.outcomes[outcome] += count
                if outcome == "unauthorized":
                    summary.reasons[sample.labels.get("reason", "unknown")] += count
    except ValueError as e:
        raise DiagnoseError(f"not Prometheus metrics text: {e}") from e
    if not found and f"# HELP {VALIDATE_METRIC}" not in text:
        raise DiagnoseError(f"no {VALIDATE_METRIC} in the metrics: is this auth-service?")
    # Counters that never moved are exposed as 0: they are not decisions.
    summary.outcomes = +summary.outcomes
    summary.reasons = +summary.reasons
    return summary


def verdict_for(share_unauthorized: float) -> Verdict:
    """The verdict on a share of 401s (0 to 1)."""
    if share_unauthorized < 0.5:
        return Verdict.NORMAL
    if share_unauthorized < 0.7:
        return Verdict.ELEVATED
    if share_unauthorized <= 0.9:
        return Verdict.INVESTIGATE
    return Verdict.CRITICAL


_HEADLINES = {
    Verdict.NORMAL: "an ordinary share of 401s; nothing to do unless it keeps rising",
    Verdict.ELEVATED: "more refusals than usual, worth a look if it lasts",
    Verdict.INVESTIGATE: "most requests are refused; a client or a proxy is likely misconfigured",
    Verdict.CRITICAL: "almost every request is refused; users are probably locked out",
}

# Per dominant reason: (likely causes, next steps).
_ADVICE = {
    "missing_token": (
        "clients send no credential, a proxy strips Authorization, or browsers have no session",
        "check every proxy hop passes Authorization and Cookie on; for browsers, "
        "AUTH_COOKIE_DOMAIN and AUTH_COOKIE_SECURE",
    ),
    "expired_token": (
        "clients do not refresh their access tokens in time, or clocks are skewed",
        "make clients refresh before expires_in runs out; check NTP on clients and replicas",
    ),
    "invalid_token": (
        "tokens from another issuer or audience, or signed by a key we do not know (rotation)",
        "compare a refused token's kid, iss and aud with /.well-known/jwks.json, "
        "AUTH_ISSUER and AUTH_AUDIENCE",
    ),
    "revoked_token": (
        "tokens still used after logout, or a disabled user or new password ended their sessions",
        "look for disabled accounts with `auth-service user list`; those clients must log in again",
    ),
    "malformed_header": (
        "a client bug: several Authorization headers, not Bearer, or characters outside RFC 6750",
        "find that client among the top clients above and look at the header it sends",
    ),
    "token_too_long": (
        "clients send another token (an ID token, another service's) over AUTH_TOKEN_MAX_LENGTH",
        "find that client among the top clients above and check which token it sends",
    ),
    "invalid_request": (
        "the proxy forwards paths with control characters or malformed escapes (answered 400)",
        "check what the proxy puts in X-Forwarded-Uri or X-Original-URI",
    ),
}
_UNKNOWN_ADVICE = (
    "a refusal reason this version does not describe",
    "read the DEBUG validate lines with that error_type",
)


def advice(verdict: Verdict, dominant_reason: str | None) -> list[str]:
    """Two or three lines: what the verdict means, likely causes and next steps."""
    lines = [f"{verdict.value}: {_HEADLINES[verdict]}"]
    if dominant_reason is None:
        return [*lines, "  no refusals at all"]
    causes, steps = _ADVICE.get(dominant_reason, _UNKNOWN_ADVICE)
    label = "if it rises" if verdict is Verdict.NORMAL else "next"
    return [*lines, f"  likely ({dominant_reason}): {causes}", f"  {label}: {steps}"]


def report(summary: Summary, source: str) -> list[str]:
    """The lines ``diagnose`` prints; the last one is ``verdict: <word>``."""
    lines = [f"source: {source}"]
    if summary.skipped:
        lines.append(f"skipped {summary.skipped} of {summary.lines} lines: not JSON objects")
    total = summary.decisions
    if not total:
        lines.append("no validate decisions found")
        if summary.clients is not None:
            lines.append("  (they are logged with AUTH_LOG_LEVEL=DEBUG and AUTH_LOG_FORMAT=json)")
        lines.append(f"verdict: {Verdict.NORMAL.value}")
        return lines
    share = summary.share_unauthorized
    verdict = verdict_for(share)
    lines.append(f"validate decisions: {total}")
    for outcome, count in summary.outcomes.most_common():
        lines.append(f"  {outcome:<24} {count:>8}")
    lines.append(f"401 rate: {share * 100:.1f} % ({summary.unauthorized} of {total})")
    if summary.outcomes["error"]:
        lines.append("internal errors (500) among them: see the ERROR lines of the log")
    if summary.reasons:
        lines.append("refusals by reason:")
        for reason, count in summary.reasons.most_common():
            percent = count / summary.unauthorized * 100
            lines.append(f"  {reason:<24} {count:>8}  {percent:5.1f} %")
    lines.extend(_top("clients", summary.clients))
    lines.extend(_top("paths", summary.paths))
    lines.append("")
    lines.extend(advice(verdict, summary.dominant_reason))
    lines.append(f"verdict: {verdict.value}")
    return lines


def verdict_of(summary: Summary) -> Verdict:
    return verdict_for(summary.share_unauthorized) if summary.decisions else Verdict.NORMAL


def _top(what: str, counts: Counter[str] | None) -> list[str]:
    if counts is None:
        return [f"top {what} among refusals: not available from metrics"]
    if not counts:
        return []
    return [f"top {what} among refusals:"] + [
        f"  {name:<24} {count:>8}" for name, count in counts.most_common(TOP)
    ]


# -- input ------------------------------------------------------------------------------------


def _log_lines(path: str) -> Iterator[str]:
    if path == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(errors="replace")
        yield from sys.stdin
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            yield from file
    except OSError as e:
        raise DiagnoseError(f"cannot read {path}: {e.strerror or e}") from e


def _fetch_metrics(url: str) -> str:
    try:
        import httpx
    except ImportError as e:
        raise DiagnoseError("--url needs the httpx package: pip install httpx") from e
    metrics_url = url if url.rstrip("/").endswith("/metrics") else url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(metrics_url, timeout=_TIMEOUT_SECONDS)
    except httpx.HTTPError as e:
        raise DiagnoseError(f"cannot reach {metrics_url}: {str(e) or type(e).__name__}") from e
    if response.status_code != 200:
        raise DiagnoseError(f"{metrics_url} answered {response.status_code}")
    return response.text


# -- command ----------------------------------------------------------------------------------


def run_diagnose(args: argparse.Namespace) -> int:
    """Print the report; return the verdict's exit status, or 4 when nothing could be read."""
    try:
        if args.url:
            summary = summarise_metrics(_fetch_metrics(args.url))
            source = f"{args.url} /metrics (counts since that process started)"
        else:
            summary = summarise_log(_log_lines(args.file))
            source = "stdin" if args.file == "-" else args.file
    except DiagnoseError as e:
        print(f"auth-service: error: {e}", file=sys.stderr)
        return ERROR_EXIT
    print("\n".join(report(summary, source)))
    return verdict_of(summary).exit_status


def add_parser(subparsers: Any) -> None:
    """Register ``diagnose`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "diagnose",
        help="explain the share of 401s from a JSON log or a running service's metrics",
        description=(
            "Count validate decisions and their reasons, and give a verdict. "
            "Exit status: 0 normal (<50 % 401s), 1 elevated (50-70 %), "
            "2 investigate (70-90 %), 3 critical (>90 %), 4 input cannot be read."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="JSON log with DEBUG validate lines; - reads stdin",
    )
    source.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8080")
    parser.set_defaults(func=run_diagnose)
