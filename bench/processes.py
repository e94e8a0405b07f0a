"""Start, wait for and stop the server processes: always by pid, always in ``finally``."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import BenchError
from .client import HOST, request

STOP_GRACE_SECONDS = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (empty when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running(
    name: str, argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (output to ``log_path``) for the duration of the ``with`` block.

    The process gets its own session, so a Ctrl-C in the terminal reaches only us and we
    stop it ourselves, in order.
    """
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop(name, proc)


def stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` by its pid: SIGINT (uvicorn's graceful shutdown), SIGKILL if it hangs.

    SIGINT rather than SIGTERM: after a graceful shutdown uvicorn re-raises the signal, and
    only SIGINT turns into an ordinary exit that runs ``atexit`` handlers (auth-service's
    embedded PostgreSQL is stopped by one).
    """
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"bench: {name} (pid {proc.pid}) ignored SIGINT; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def wait_until_ok(
    name: str,
    proc: subprocess.Popen[bytes],
    port: int,
    path: str,
    log_path: Path,
    timeout: float,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll ``GET path`` until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        code = proc.poll()
        if code is not None:
            raise BenchError(
                f"{name} exited with status {code} before it was ready; "
                f"end of its log:\n{log_tail(log_path)}"
            )
        try:
            status = request(port, "GET", path, headers=headers, timeout=2.0).status
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if status == 200:
                return
            last = f"status {status}"
        if time.monotonic() > deadline:
            raise BenchError(
                f"{name} did not answer 200 on {path} within {timeout:.0f} s ({last}); "
                f"end of its log:\n{log_tail(log_path)}"
            )
        time.sleep(0.2)


def _runs_on(pid: int, pgdata: Path) -> bool:
    """True when process ``pid`` exists and is a postgres serving ``pgdata`` (Linux /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(pgdata).encode() in argv


def stop_embedded_postgres(pgdata: Path) -> None:
    """Stop the PostgreSQL server left running on ``pgdata``, if any, by its postmaster pid.

    auth-service normally stops its embedded server when it exits; this is the safety net
    for when it did not (it was killed, or it crashed), so that no server outlives the run.
    """
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    # SIGINT: PostgreSQL's "fast" shutdown; SIGQUIT: "immediate", if the first one hangs.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        if not _runs_on(pid, pgdata):
            return
        print(f"bench: stopping the embedded PostgreSQL left running (pid {pid})", file=sys.stderr)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and _runs_on(pid, pgdata):
            time.sleep(0.1)
    if _runs_on(pid, pgdata):
        print(f"bench: PostgreSQL (pid {pid}) is still running on {pgdata}", file=sys.stderr)


def resident_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (``VmRSS`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise BenchError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by process ``pid`` and its descendants (uvicorn's
    workers), in seconds; the embedded PostgreSQL, a descendant too, is left out."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        pending += [int(child) for child in children]
    return total
