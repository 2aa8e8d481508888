"""The Pythons a managed host may have, as the tests find them on this machine: pyenv's builds of 3.8 to 3.13,
each made bare (a virtual environment without any package) as a host's system Python looks to a module."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# The modules' documented requirement (python >= OLDEST) and every version the tests run them on.
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
OLDEST = VERSIONS[0]
NOT_ON_A_BARE_HOST = ("yaml", "pip", "setuptools", "notification_emergency", "ansible", "requests", "psycopg")


def pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def base_interpreter(version: str) -> Path | None:
    """This machine's Python ``version`` (pyenv's build), if it has one that runs (a pyenv shim may exist
    without the version being installed)."""
    wanted = tuple(int(part) for part in version.split("."))
    for candidate in sorted(pyenv_versions().glob(f"{version}.*/bin/python{version}")):
        probe = subprocess.run(
            [candidate, "-c", f"import sys; assert sys.version_info[:2] == {wanted}"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


def missing_reason(version: str) -> str:
    return f"no Python {version} on this machine (looked for {pyenv_versions()}/{version}.*/bin/python{version})"


def bare_python(base: Path, home: Path) -> Path:
    """A virtual environment of ``base`` in ``home`` without any package, not even pip: its ``bin/python``.
    Checked: none of NOT_ON_A_BARE_HOST can be imported."""
    if not (home / "bin" / "python").exists():
        subprocess.run([base, "-m", "venv", "--without-pip", home], check=True, capture_output=True)
    python = home / "bin" / "python"
    script = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m) is not None])"
    found = subprocess.run([python, "-c", script, *NOT_ON_A_BARE_HOST], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", f"{python} is not bare: it has {found.stdout.strip()}"
    return python


__all__ = ["NOT_ON_A_BARE_HOST", "OLDEST", "VERSIONS", "bare_python", "base_interpreter", "missing_reason"]
