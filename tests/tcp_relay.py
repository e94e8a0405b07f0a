"""A TCP relay to PostgreSQL whose connections the tests can cut and restore.

It stands between one replica and the database, so that a test can take that replica's
database away (every connection closed, new ones refused) while the other replica keeps its
own, and give it back; or stall it (connections stay open, nothing passes: a server that
hangs).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def target_of(url: str) -> tuple[int, str | tuple[str, int]]:
    """The socket family and address of the server named by a PostgreSQL URL."""
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    port = parts.port or 5432
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class Relay:
    """Listens on 127.0.0.1 (or, given ``socket_dir``, on a Unix socket there, as PostgreSQL
    does) and pipes each connection to the database server."""

    def __init__(self, database_url: str, socket_dir: Path | None = None) -> None:
        self.family, self.target = target_of(database_url)
        self.socket_dir = socket_dir
        self.port = 5432
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stalled = False
        self._closing = False
        self._listen()

    def _listen(self) -> None:
        if self.socket_dir is None:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self.port = int(self._listener.getsockname()[1])
        else:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(str(self.socket_dir / f".s.PGSQL.{self.port}"))
            self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def url_for(self, database_url: str) -> str:
        """``database_url`` rewritten to go through this relay."""
        name = urlsplit(database_url).path
        if self.socket_dir is not None:
            return f"postgresql://postgres@{name}?host={self.socket_dir}"
        return f"postgresql://postgres@127.0.0.1:{self.port}{name}"

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones until ``restore``; a Unix
        socket is removed, as a stopped PostgreSQL removes its own."""
        with self._lock:
            self._cut = True
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._open.clear()
            if self.socket_dir is not None:
                self._listener.close()
                (self.socket_dir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            if self.socket_dir is not None and self._listener.fileno() == -1:
                self._listen()

    def stall(self) -> None:
        """Hold every byte, both ways, until ``resume``: queries hang, connects hang."""
        self._stalled = True

    def resume(self) -> None:
        self._stalled = False

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._listener.close()
        if self.socket_dir is not None:
            (self.socket_dir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                server = socket.socket(self.family, socket.SOCK_STREAM)
                try:
                    server.connect(self.target)
                except OSError:
                    client.close()
                    continue
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                while self._stalled and not self._closing:
                    time.sleep(0.02)
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.close()
