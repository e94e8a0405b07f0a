"""A demo upstream for the end-to-end tests: answers every request with what it received."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    """Responds with the method, path and every header (as a list, to show duplicates)."""

    def _answer(self) -> None:
        body = json.dumps(
            {"method": self.command, "path": self.path, "headers": list(self.headers.items())}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-upstream", "echo")  # tells a forwarded answer from a refusal
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
