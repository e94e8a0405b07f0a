"""What a route receives from FastAPI's dependency injection: the runtime, typed.

``AuthServiceApp`` puts the runtime on the FastAPI application's state once start-up has
opened it; this is the one place that reads it back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from ..runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The runtime of the application serving ``request``; 503 before start-up ends."""
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise HTTPException(503, "starting up")
    return runtime


def get_optional_runtime(request: Request) -> Runtime | None:
    """The runtime, or None before start-up ends (health checks answer then too)."""
    runtime = getattr(request.app.state, "runtime", None)
    return runtime if isinstance(runtime, Runtime) else None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
OptionalRuntimeDep = Annotated[Runtime | None, Depends(get_optional_runtime)]
