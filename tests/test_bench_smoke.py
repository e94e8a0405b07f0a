"""``python -m bench --smoke``: every scenario of the benchmark runs, for a second each, and
the table comes out. The figures of so short a run are not judged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_the_smoke_run_measures_every_scenario_and_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert table.startswith("scenario  what")
    for scenario in ("direct", "traefik", "fresh", "workers", "memory", "login"):
        assert f"\n{scenario} " in table, scenario
    for label in ("1", "2", "3", "4", "5a", "5b", "6"):
        assert f"\n{label}. " in table, label
    assert "note: smoke run" in table
    assert "FAIL" not in table and "PASS" not in table  # a smoke run judges nothing
