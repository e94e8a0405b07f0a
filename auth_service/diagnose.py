"""``auth-service diagnose``: how many validate requests end in 401, why, and what to do.

It reads the validate decisions of a JSON log (``AUTH_LOG_FORMAT=json``, ``AUTH_LOG_LEVEL=DEBUG``)
from a file or stdin, or the ``auth_validate_requests_total`` counters of a running service's
``/metrics`` (since that process started; one replica). Refusals are counted as the service
counts them: every ``refused`` line is outcome ``unauthorized``, including the few 400, 414 and
431 answers to requests validate will not decide on (reason ``invalid_request``) and the 302s
that send browsers to login.

Parsing and counting are pure functions, and so are the verdict and the report
(``verdict.py``); only the two readers, ``log_lines`` and ``fetch_metrics``, touch files,
stdin or the network. The command itself, with its exit statuses, is ``cli/health.py``.
"""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator

from .errors import AuthServiceError
from .verdict import Summary

VALIDATE_LOGGER = "auth_service.validate"
VALIDATE_METRIC = "auth_validate_requests_total"
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


# -- input ------------------------------------------------------------------------------------


def log_lines(path: str) -> Iterator[str]:
    """The lines of the file at ``path``, or of stdin for ``-``, undecodable bytes replaced."""
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


def fetch_metrics(url: str) -> str:
    """The text of ``url``'s ``/metrics`` (appended unless the URL already ends with it)."""
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
