#!/usr/bin/env python3
"""Run ``ansible-test sanity`` on the built collection, offline apart from the package registry (``make sanity``).

    python scripts/collection_sanity.py [--test NAME ...] [--python 3.9 ...] [--work DIR]

1. Builds the collection (scripts/build_collection.py) and copies its tree to a work directory outside this
   git repository (ansible-test only looks at the files git tracks when the collection is inside a repository,
   and the built tree is git-ignored).
2. Provides ansible-test's pip bootstrap locally. ansible-test creates an empty virtual environment per Python
   version and runs ``get-pip-<version>.py``, which it downloads from ci-files.testing.ansible.com, a host this
   machine cannot reach. The pip wheel of that version comes from the package registry instead
   (``pip download``), and ``~/.ansible/test/cache/get_pip_<version>.py`` (the path ansible-test reads first)
   becomes a small script that installs it from that wheel, as get-pip.py does from the wheel it embeds.
3. Puts every Python 3.8-3.13 of pyenv on PATH, so the multi-version tests (import, compile) run on each, and
   runs ``ansible-test sanity --venv`` in the collection with the ignore file the build copied from
   ``collection/tests/sanity/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_collection  # a sibling script, not a package

PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
CACHE = Path.home() / ".ansible" / "test" / "cache"
GET_PIP = '''"""get-pip for ansible-test, offline: installs pip from {wheel}.

Written by scripts/collection_sanity.py.
"""
import sys

WHEEL = {wheel!r}
# get-pip.py's own options: ansible-test passes them to leave setuptools and wheel out; pip does not know them.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", "--upgrade", "--force-reinstall", "--no-index", "--find-links", {folder!r}] + args))
'''


def ansible_test_pip_version() -> str:
    """The pip version ansible-test bootstraps (``default_packages`` in its python_requirements.py)."""
    spec = importlib.util.find_spec("ansible_test")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("collection_sanity: ansible-test is not installed (it comes with ansible-core)")
    source = Path(spec.submodule_search_locations[0], "_internal", "python_requirements.py").read_text(encoding="utf-8")
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source)
    if found is None:
        raise SystemExit("collection_sanity: cannot find the pip version in ansible-test's python_requirements.py")
    return found.group(1)


def provide_get_pip(version: str) -> Path:
    """~/.ansible/test/cache/get_pip_<version>.py installing pip <version> from a wheel of the registry."""
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = next(wheels.glob(f"pip-{version}-*.whl"), None)
    if wheel is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"pip=={version}", "-d", str(wheels)],
            check=True,
        )
        wheel = next(wheels.glob(f"pip-{version}-*.whl"))
    target = CACHE / f"get_pip_{version.replace('.', '_')}.py"
    text = GET_PIP.format(wheel=str(wheel), folder=str(wheels))
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def pythons_path() -> tuple[str, list[str]]:
    """PATH with pyenv's 3.8-3.13 in front, and the versions found."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: list[str] = []
    dirs: list[str] = []
    for version in PYTHONS:
        candidates = sorted(root.glob(f"{version}.*/bin/python{version}"))
        if candidates:
            found.append(version)
            dirs.append(str(candidates[-1].parent))
    return os.pathsep.join([*dirs, os.environ.get("PATH", "")]), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", action="append", default=[], help="only this sanity test (repeatable)")
    parser.add_argument("--python", action="append", default=[], help="only this Python version (repeatable)")
    parser.add_argument("--work", type=Path, help="work directory (default: a new temporary one, removed after)")
    args = parser.parse_args(argv)

    ansible_test = Path(sys.executable).parent / "ansible-test"
    get_pip = provide_get_pip(ansible_test_pip_version())
    path, found = pythons_path()
    work = args.work or Path(tempfile.mkdtemp(prefix="notification-sanity-"))
    try:
        built = build_collection.assemble(work / "build")
        collection = work / "ansible_collections" / build_collection.NAMESPACE / build_collection.NAME
        if collection.exists():
            shutil.rmtree(collection)
        shutil.copytree(built, collection)
        command = [str(ansible_test), "sanity", "--venv", "--color", "no"]
        for test in args.test:
            command += ["--test", test]
        for version in args.python:
            command += ["--python", version]
        print(f"ansible-test sanity on Python {', '.join(args.python or found)} (pip bootstrap: {get_pip})")
        env = {**os.environ, "PATH": path}
        return subprocess.run(command, cwd=collection, env=env, check=False).returncode
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
