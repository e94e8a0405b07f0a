"""The README's "On a fresh machine" blocks, run as written: a copy of the repository, a fresh
virtualenv, a fresh data folder, POSIX ``sh`` (dash) for the blocks marked ``sh``.

One change is made to what the user would type: the port. The README says 8080 (the default),
which another program on a shared machine may hold; the test serves on a free port through
``AUTH_PORT`` and writes that port into the commands that call the service.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from auth_service.settings import Settings

from .readme import ROOT, fenced_blocks, section

README_ADDRESS = "127.0.0.1:8080"
# What a copy of the repository leaves behind: a user clones the sources, not our state.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".auth-service", "*.egg-info", "__pycache__", ".*_cache"
)
SHELLS = {"sh": "dash", "bash": "bash"}


def shell(language: str) -> str:
    program = shutil.which(SHELLS[language])
    assert program, f"{SHELLS[language]} is not installed"
    return program


def user_environment(**extra: str) -> dict[str, str]:
    """A user's shell: no AUTH_* settings, and not inside the test suite's virtualenv."""
    ours = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTH_", "PYTEST_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "block",
    [body for language, body in fenced_blocks() if language == "sh"],
    ids=lambda block: block.splitlines()[0][:40],
)
def test_every_sh_block_is_posix_sh(block: str) -> None:
    """A block marked ``sh`` parses in dash (no ``<<<``, no ``[[``)."""
    checked = subprocess.run(
        [shell("sh"), "-n", "-c", block], capture_output=True, text=True, timeout=10
    )
    assert checked.returncode == 0, checked.stderr


def test_the_readme_port_is_the_default_port() -> None:
    text = section("On a fresh machine")
    assert f"http://{README_ADDRESS}" in text
    assert Settings.model_fields["port"].default == int(README_ADDRESS.rpartition(":")[2])
    assert Settings.model_fields["host"].default == README_ADDRESS.rpartition(":")[0]


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    blocks = fenced_blocks(section("On a fresh machine"))
    (install_language, install), (use_language, use) = blocks[:2]
    assert "auth-service serve" in install and "$TOKEN" in use

    repo = tmp_path / "auth-service"
    shutil.copytree(ROOT, repo, ignore=NOT_COPIED)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [shell(install_language), "-e", "-c", install],
            cwd=repo,
            env=user_environment(AUTH_PORT=str(port)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the shell, pip and the server: one group to stop
        )
    try:
        _wait_until_ready(server, port, log_path)
        # It logged how to add the first user.
        assert "auth-service user add" in log_path.read_text(errors="replace")

        used = subprocess.run(
            [shell(use_language), "-e", "-c", use.replace(README_ADDRESS, f"127.0.0.1:{port}")],
            cwd=repo,
            env=user_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert used.returncode == 0, used.stdout + used.stderr
        assert used.stdout.startswith("added user alice"), used.stdout
        answer = used.stdout[used.stdout.index("HTTP/") :]  # curl -i: the last command
        status, *headers = answer.split("\r\n\r\n")[0].splitlines()
        assert status == "HTTP/1.1 200 OK", used.stdout
        seen = {n.lower(): v.strip() for n, _, v in (h.partition(":") for h in headers)}
        assert seen["x-auth-user"] == "alice"
        assert seen["x-auth-groups"] == "admins"
        # A fresh data folder, in the copy: nothing was shared with the test suite's.
        assert (repo / ".auth-service").is_dir()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


def _free_port() -> int:
    from .conftest import free_port

    return free_port()


def _wait_until_ready(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """pip installs the package first: allow a few minutes."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the install block ended:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the service never became ready:\n{log_path.read_text()[-4000:]}")
