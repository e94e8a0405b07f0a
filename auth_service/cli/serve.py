"""``auth-service serve`` and ``migrate``: run the service, or only bring its schema up to date."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from .command import CommandError, load_settings

if TYPE_CHECKING:
    from ..settings import Settings
    from .command import Commands


def register(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (default AUTH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUTH_PORT or 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(func=serve_command)

    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(
        func=migrate_command
    )


def serve_command(args: argparse.Namespace) -> int:
    from ..key_encryption import load_key_ring

    settings = load_settings()
    if settings.config is not None:
        from ..config import load_config

        load_config(settings.config)  # a bad file stops here, with one clear line
    # Likewise a missing key-encryption key; the embedded database's is made here, once,
    # before any worker starts.
    load_key_ring(settings)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metric values here so that one scrape sees them all.
        metrics_dir = tempfile.mkdtemp(prefix="auth-service-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _run_uvicorn(settings, host, port, args.workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "auth_service.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=settings.access_log,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


def migrate_command(args: argparse.Namespace) -> int:
    from ..db import apply_migrations, open_database

    settings = load_settings()

    async def run() -> int:
        async with open_database(settings, migrate=False) as pool, pool.acquire() as conn:
            applied = await apply_migrations(conn)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        return 0

    return asyncio.run(run())
