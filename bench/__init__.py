"""Throughput benchmark of ``GET /api/v1/auth/validate`` against a bare ASGI baseline.

Run it with ``python -m bench`` from the project root; see ``bench/README.md``.
"""

from __future__ import annotations


class BenchError(Exception):
    """The benchmark cannot go on: a server did not start, a check failed, wrk misbehaved."""
