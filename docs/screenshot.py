"""Refresh the README's screenshots: the browser tests take them.

Run from the repository root, in the project's environment::

    .venv/bin/python docs/screenshot.py

It runs the flows of ``tests/browser/test_flows.py`` in the docker-compose layout (Chromium
through Traefik, with the demo's settings) with ``SCREENSHOTS_DIR`` set to this folder, so
the pictures are of the pages the tests just drove: ``login.png`` (the login page as a
browser first sees it), ``login-error.png`` (after a wrong password) and ``home.png``
(signed in). The test suite takes the same pictures whenever ``SCREENSHOTS_DIR`` is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def main() -> int:
    env = {**os.environ, "SCREENSHOTS_DIR": str(DOCS)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/browser/test_flows.py",
        "-k",
        "compose",
    ]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
