"""The results: a table for people, a JSON document for scripts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .wrk import WrkResult


@dataclass(frozen=True, slots=True)
class Measurement:
    """One named target and what wrk measured against it."""

    name: str
    url: str
    result: WrkResult


@dataclass(slots=True)
class Report:
    """Everything one benchmark run produced."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    token_cache: dict[str, float] = field(default_factory=dict)

    def rate(self, name: str) -> float:
        """Requests/s of the measurement called ``name``."""
        return next(m.result.requests_per_second for m in self.measurements if m.name == name)

    @property
    def ratio(self) -> float:
        """Requests/s of validate divided by those of the baseline."""
        return self.rate("validate") / self.rate("baseline")

    def as_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "settings": self.settings,
            "environment": self.environment,
            "results": [
                {"name": m.name, "url": m.url, **asdict(m.result)} for m in self.measurements
            ],
            "ratio_validate_to_baseline": round(self.ratio, 4),
            "token_cache_during_validate_run": self.token_cache,
        }


def format_table(report: Report) -> str:
    """A fixed-width table: name, requests/s, p50 ms, p99 ms, ratio to the baseline."""
    baseline = report.rate("baseline")
    lines = [f"{'name':<10} {'requests/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}"]
    for m in report.measurements:
        r = m.result
        lines.append(
            f"{m.name:<10} {r.requests_per_second:>12,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.requests_per_second / baseline:>12.2f}"
        )
    lines.append(f"ratio validate/baseline (requests/s): {report.ratio:.2f}")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    """Write the JSON document to ``path``."""
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
