"""Benchmarks of ``/api/v1/auth/validate`` against the performance targets: direct, through
Traefik, fresh tokens, workers, memory and logins, each as a ratio measured in one run.

Run it with ``python -m bench`` from the project root; see ``bench/README.md``.
"""

from __future__ import annotations


class BenchError(Exception):
    """The benchmark cannot go on: a server did not start, a check failed, wrk misbehaved."""
