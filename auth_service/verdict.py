"""The verdict of ``auth-service diagnose`` and the report it prints: thresholds and wording.

``diagnose.py`` reads and counts the validate decisions; this module judges the counts and
says what to do about them; nothing here reads a file or the network.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

TOP = 5


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
    "wrong_resource": (
        "OAuth clients send a token made for another MCP server, or the proxy forwards another "
        "host, scheme or path than the resource's",
        "compare a refused token's aud with the [[resources]] url and the X-Forwarded-Proto "
        "and -Host the proxy sends (a TLS terminator's proto must reach us)",
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
