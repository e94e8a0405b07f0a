"""Take the README screenshots of the login page with headless Chromium.

Run from the repository root::

    python docs/screenshot.py [--out-dir docs]

It starts ``auth-service serve`` on a free local port with a throw-away embedded PostgreSQL,
waits for ``/health/ready``, and writes two pictures:

* ``login.png``: ``/login?rd=/`` as a browser first sees it;
* ``login-error.png``: the form after a wrong password. That page is the answer to a POST, so
  the script does the real flow with httpx (CSRF field and cookie included), saves the 401
  answer's HTML to a file and renders that file (no CSP header there, so the nonce'd inline
  style still applies).

Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_TIMEOUT_SECONDS = 60
READY_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--window-size=900,700",
)
CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')


class ScreenshotError(Exception):
    """Something needed for the screenshots did not work."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(data_dir: Path) -> dict[str, str]:
    """Our environment without inherited ``AUTH_*`` settings, plus the few we want."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTH_")}
    env.update(
        AUTH_DATA_DIR=str(data_dir),
        AUTH_COOKIE_SECURE="false",
        AUTH_LOG_LEVEL="WARNING",
    )
    return env


def start_service(port: int, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``auth-service serve`` in the background, its output going to ``log_path``."""
    command = Path(sys.executable).with_name("auth-service")
    if not command.exists():
        raise ScreenshotError(f"{command} not found: is the project installed in this venv?")
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(command), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=service_env(data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal reaches only us, and we stop it.
            start_new_session=True,
        )


def wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll ``/health/ready`` until it answers 200; fail if the service exits or is slow."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ScreenshotError(
                    f"auth-service exited with {process.returncode}:\n{read_log(log_path)}"
                )
            try:
                if client.get("/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise ScreenshotError(
        f"auth-service not ready after {READY_TIMEOUT_SECONDS} s:\n{read_log(log_path)}"
    )


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a graceful uvicorn shutdown, which also stops PostgreSQL), then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def read_log(log_path: Path) -> str:
    """The service's output so far (for error messages)."""
    try:
        return log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"


def wrong_password_page(base_url: str) -> str:
    """The HTML of the login form re-rendered after a wrong password (a real POST)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        form = client.get("/login", params={"rd": "/"})
        form.raise_for_status()
        match = CSRF_FIELD.search(form.text)
        cookie = form.cookies.get("auth_csrf")
        if match is None or cookie is None:
            raise ScreenshotError("GET /login gave no csrf_token field or no auth_csrf cookie")
        answer = client.post(
            "/login",
            data={
                "csrf_token": match.group(1),
                "rd": "/",
                "username": "demo",
                "password": "not-the-password",
            },
            cookies={"auth_csrf": cookie},
        )
    if answer.status_code != 401 or 'class="message error"' not in answer.text:
        raise ScreenshotError(
            f"POST /login with a wrong password: expected 401 with an error message, "
            f"got {answer.status_code}:\n{answer.text[:500]}"
        )
    return answer.text


def screenshot(url: str, out: Path, scratch: Path) -> None:
    """Render ``url`` with headless Chromium into ``out`` (a fresh profile each time)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=scratch))
    out.unlink(missing_ok=True)
    command = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        url,
    ]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ScreenshotError(f"chromium took more than {CHROMIUM_TIMEOUT_SECONDS} s") from e
    if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise ScreenshotError(
            f"chromium exited with {result.returncode} for {url}, no picture in {out}:\n"
            f"{result.stderr[-2000:]}"
        )
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=Path("docs"), help="default: docs")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)

    # The data folder on its own: as root the embedded PostgreSQL runs as another user, and
    # the service opens this folder (not a parent) to it.
    data_dir = Path(tempfile.mkdtemp(prefix="auth-screenshot-data-"))
    scratch = Path(tempfile.mkdtemp(prefix="auth-screenshot-"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = scratch / "service.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        process = start_service(port, data_dir, log_path)
        wait_ready(process, base_url, log_path)
        screenshot(f"{base_url}/login?rd=/", out_dir / "login.png", scratch)
        error_html = scratch / "login-error.html"
        error_html.write_text(wrong_password_page(base_url), encoding="utf-8")
        screenshot(error_html.as_uri(), out_dir / "login-error.png", scratch)
    except ScreenshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            stop_service(process)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
