"""The results: one table for people (rows, then the issue's targets), a JSON document for
scripts."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .wrk import WrkResult

PASS, FAIL, INFO, SKIP, SMOKE = "PASS", "FAIL", "INFO", "SKIP", "smoke"


@dataclass(frozen=True, slots=True)
class Row:
    """One measured thing: requests/s and latency (medians over the rounds), or a note."""

    scenario: str
    name: str
    requests_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""
    rounds: tuple[WrkResult, ...] = ()

    @classmethod
    def from_rounds(cls, scenario: str, name: str, rounds: list[WrkResult], note: str = "") -> Row:
        """The medians of several runs of one load (their spread is in ``rounds``)."""
        return cls(
            scenario,
            name,
            statistics.median(r.requests_per_second for r in rounds),
            statistics.median(r.p50_ms for r in rounds),
            statistics.median(r.p99_ms for r in rounds),
            note,
            tuple(rounds),
        )


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue, as measured in this run."""

    label: str  # the number, e.g. "1" or "5a"
    title: str
    measured: str
    required: str
    status: str  # PASS, FAIL, INFO (no threshold applies here), SKIP, smoke (not judged)
    note: str = ""


@dataclass(slots=True)
class Report:
    """Everything one benchmark run produced."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "settings": self.settings,
            "environment": self.environment,
            "rows": [
                {**asdict(row), "rounds": [asdict(r) for r in row.rounds]} for row in self.rows
            ],
            "targets": [asdict(t) for t in self.targets],
            "notes": self.notes,
        }


def ratio_text(ratios: list[float]) -> str:
    """The median ratio, with the range over the rounds when there were several."""
    text = f"{statistics.median(ratios):.2f}x"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return text


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: Report) -> str:
    """The rows (requests/s, p50, p99) and below them the targets with PASS/FAIL."""
    rows = [("scenario", "what", "requests/s", "p50 ms", "p99 ms", "note")] + [
        (
            row.scenario,
            row.name,
            _figure(row.requests_per_second, ",.0f"),
            _figure(row.p50_ms, ".2f"),
            _figure(row.p99_ms, ".2f"),
            row.note,
        )
        for row in report.rows
    ]
    targets = [("target", "measured", "required", "result")] + [
        (f"{t.label}. {t.title}", t.measured, t.required, t.status) for t in report.targets
    ]
    lines = _columns(rows, right_aligned={2, 3, 4})
    lines.append("")
    for line, target in zip(_columns(targets), [None, *report.targets], strict=True):
        lines.append(line)
        if target is not None and target.note:
            lines.append(f"    {target.note}")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def _columns(rows: Sequence[tuple[str, ...]], right_aligned: set[int] | None = None) -> list[str]:
    """Fixed-width lines, each column as wide as its widest cell (the last one unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = right_aligned or set()
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def write_json(report: Report, path: Path) -> None:
    """Write the JSON document to ``path``."""
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
