"""The wheel that ``pip install .`` builds (the Docker image does) holds the whole service.

An editable install reads the source tree, so the rest of the suite cannot notice a module,
template or migration that the package list leaves out of a real install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_template_and_migration(tmp_path: Path) -> None:
    # A copy of what the build reads: setuptools would reuse a build/ folder left in the tree.
    source = tmp_path / "source"
    for folder in ("auth_service", "migrations"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("auth_service-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "auth_service").rglob("*.py")),
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "auth_service" / "templates").glob("*")),
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "auth_service" / "data").glob("*")),
        *(f"auth_service/migrations/{p.name}" for p in (ROOT / "migrations").glob("*.sql")),
    }
    missing = sorted(expected - packaged)
    assert not missing, f"pip install . would leave out {missing}"
