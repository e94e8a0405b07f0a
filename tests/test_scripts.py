"""``scripts/test`` and ``scripts/bootstrap``, the README's test command, on a machine that
lacks the Debian packages the tests need and offers no way to install them: one line names
them with the command that installs them, exit status 69, and nothing is touched.

The machine is simulated by what the script can see: a PATH of one folder holding only the
programs chosen here (Debian's /usr/sbin and /sbin, which the script adds for nginx, stay
visible), and, where apt-get is visible, a user who is not root and has no sudo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .readme import ROOT

# What scripts/bootstrap checks: program -> the Debian package that brings it.
NEEDS = {
    "python3": "python3",
    "nginx": "nginx-light",
    "promtool": "prometheus",
    "wrk": "wrk",
    "chromium": "chromium",
    "curl": "curl",
}
EX_UNAVAILABLE = 69
NOBODY = "65534"


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of the scripts in a folder that any user may enter (tmp_path is root's only)."""
    with tempfile.TemporaryDirectory(prefix="auth-service-scripts-") as folder:
        repo = Path(folder)
        repo.chmod(0o755)
        (repo / "scripts").mkdir(mode=0o755)
        for name in ("bootstrap", "test"):
            shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
        (repo / "bin").mkdir(mode=0o755)
        yield repo


def _visible(bin_dir: Path, programs: list[str]) -> None:
    for program in programs:
        found = shutil.which(program)
        if found is not None:
            (bin_dir / program).symlink_to(found)


def _has_libatomic() -> bool:
    """Whether the dynamic linker knows libatomic.so.1, which Playwright's driver needs."""
    ldconfig = shutil.which("ldconfig", path="/usr/sbin:/sbin")
    assert ldconfig, "ldconfig (libc-bin) is on every Debian machine"
    listed = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=True)
    return "libatomic.so.1 " in listed.stdout


@pytest.mark.parametrize("script", ["test", "bootstrap"])
@pytest.mark.parametrize("way_out", ["no apt-get", "apt-get but no root and no sudo"])
def test_missing_packages_are_one_line_naming_them_and_the_install_command(
    checkout: Path, script: str, way_out: str
) -> None:
    bin_dir = checkout / "bin"
    _visible(bin_dir, ["sh", "id", "wrk", "curl"])
    argv = [str(checkout / "scripts" / script), "-x"]
    if way_out != "no apt-get":
        _visible(bin_dir, ["apt-get"])
        assert (bin_dir / "apt-get").exists(), "the test needs a machine with apt-get"
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            assert setpriv, "setpriv (util-linux) is needed to run the script as a user"
            argv = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    sudo = "" if way_out == "no apt-get" and os.geteuid() == 0 else "sudo "

    result = subprocess.run(
        argv,
        env={"PATH": str(bin_dir), "HOME": str(checkout)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    search = os.pathsep.join([str(bin_dir), "/usr/sbin", "/sbin"])
    packages = [p for name, p in NEEDS.items() if shutil.which(name, path=search) is None]
    missing = " ".join(packages + ([] if _has_libatomic() else ["libatomic1"]))
    assert {"python3", "prometheus", "chromium"} <= set(missing.split())
    assert "wrk" not in missing.split() and "curl" not in missing.split()
    assert result.returncode == EX_UNAVAILABLE, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"scripts/bootstrap: missing Debian packages: {missing}; install them with: "
        f"{sudo}apt-get update && {sudo}apt-get install -y {missing}\n"
    )
    # It stopped at once: no virtualenv, no pytest.
    assert sorted(p.name for p in checkout.iterdir()) == ["bin", "scripts"]
