#!/usr/bin/env python3
"""Assemble the Ansible collection ``notification.emergency`` from the repository's layout and build its tarball.

    python scripts/build_collection.py [--out build] [--no-tarball]    (what ``make collection`` runs)

The repository keeps its top-level layout (``library/``, ``module_utils/``, ``filter_plugins/``,
``strategy_plugins/``, ``roles/``, ``playbooks/``), which the project's own ansible.cfg reads. This script copies
it into ``build/collection/ansible_collections/notification/emergency/`` in the collection layout
(``plugins/modules``, ``plugins/module_utils``, ``plugins/filter``, ``plugins/strategy``, ``roles``,
``playbooks``), with the collection's own files from ``collection/`` (README, ``meta/runtime.yml``, the sanity
ignore file) and a ``galaxy.yml`` whose version is the one of ``pyproject.toml``, then runs
``ansible-galaxy collection build`` to write ``build/notification-emergency-<version>.tar.gz``.

On the way it makes every reference fully qualified, so the collection works with nothing but ansible-core:

- Python: ``ansible.module_utils.notification_*`` becomes
  ``ansible_collections.notification.emergency.plugins.module_utils.notification_*`` (the collection's own
  module_utils), and the filters take the failure catalogue from there instead of the toolkit's Python package;
- YAML (roles, playbooks, module and filter examples): the project's modules, filters and roles by their FQCN;
- symbolic links (the catalogue, the shared helpers, the service templates) become the files they point to.

Left out, with the reason: the sandbox role and playbooks, ``auto_recover.yml`` and ``notify.yml`` (they drive
the toolkit's Python package, which a collection user does not have) and the ``notification_guard`` callback
(the package's runner turns it on for its own runs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE, NAME = "notification", "emergency"
FQCN = f"{NAMESPACE}.{NAME}"
UTILS_PACKAGE = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils"

EXCLUDED_ROLES = {"notification_sandbox"}
EXCLUDED_PLAYBOOKS = {"sandbox_up.yml", "sandbox_down.yml", "auto_recover.yml", "notify.yml"}
# (repository directory, collection directory, file suffixes)
PLUGIN_DIRS = [
    ("library", "plugins/modules", (".py",)),
    ("action_plugins", "plugins/action", (".py",)),
    ("module_utils", "plugins/module_utils", (".py",)),
    ("filter_plugins", "plugins/filter", (".py", ".yml")),
    ("strategy_plugins", "plugins/strategy", (".py",)),
]
FILTER_IMPORT = "from notification_emergency import catalogue\n"
FILTER_IMPORT_COLLECTION = f"from {UTILS_PACKAGE} import notification_catalogue as catalogue\n"


class BuildError(Exception):
    """The collection cannot be built as the repository stands (says what and where)."""


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def names(directory: str, suffix: str = ".py") -> list[str]:
    return sorted(path.stem for path in (ROOT / directory).glob(f"*{suffix}") if not path.name.startswith("_"))


def filter_names() -> list[str]:
    """The filters, by their documentation files (filter_plugins/<name>.yml, one per filter)."""
    return names("filter_plugins", ".yml")


def role_names() -> list[str]:
    return sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir() and path.name not in EXCLUDED_ROLES)


class Qualifier:
    """Rewrites the project's short names into the collection's fully qualified ones (text in, text out)."""

    def __init__(self) -> None:
        modules = "|".join(names("library"))
        filters = "|".join(filter_names())
        roles = "|".join(role_names())
        # A task's action key: "  notification_health:" or "- notification_health:" (a line of its own).
        self._task_key = re.compile(rf"^(\s*(?:-\s+)?)({modules}):(\s|$)", re.MULTILINE)
        self._filter = re.compile(rf"\|(\s*)({filters})\b")
        # A role by its literal name: import_role/include_role "name:", a play's "role:" or "- role:".
        self._role = re.compile(rf"^(\s*(?:-\s+)?(?:name|role):\s+)({roles})\s*$", re.MULTILINE)
        # Documentation references: M(notification_health) and seealso's "module:"; names in prose are kept.
        self._doc_ref = re.compile(rf"M\(({modules})\)")
        self._seealso = re.compile(rf"^(\s*-\s+module:\s+)({modules})\s*$", re.MULTILINE)

    def yaml(self, text: str) -> str:
        text = self._task_key.sub(rf"\1{FQCN}.\2:\3", text)
        text = self._filter.sub(rf"|\1{FQCN}.\2", text)
        text = self._role.sub(rf"\1{FQCN}.\2", text)
        text = self._seealso.sub(rf"\1{FQCN}.\2", text)
        return self._doc_ref.sub(rf"M({FQCN}.\1)", text)

    def python(self, text: str) -> str:
        text = re.sub(r"\bansible\.module_utils\.(notification_\w+)", rf"{UTILS_PACKAGE}.\1", text)
        # The catalogue picks its data by the name it runs under: the collection's name on hosts and controllers.
        text = text.replace(
            '__name__.startswith("ansible.module_utils.")', '__name__.startswith("ansible_collections.")'
        )
        return self.yaml(text)  # the docs strings (EXAMPLES, M(...)) of modules and filters


def _copy(source: Path, target: Path, transform: Callable[[str], str] | None) -> None:
    """One file, a symbolic link resolved to the file it points to, rewritten by ``transform``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    real = source.resolve()
    if transform is None or real.suffix not in (".py", ".yml", ".yaml", ".md", ".j2"):
        shutil.copyfile(real, target)
    else:
        target.write_text(transform(real.read_text(encoding="utf-8")), encoding="utf-8")
    shutil.copymode(real, target)


def _copy_tree(source: Path, target: Path, transform: Callable[[str], str]) -> None:
    """A directory, through its links to directories too (a role's files/app_templates)."""
    for directory, subdirectories, files in os.walk(source, followlinks=True):
        subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
        for name in sorted(files):
            path = Path(directory) / name
            yaml_like = path.suffix in (".yml", ".yaml", ".md")
            _copy(path, target / path.relative_to(source), transform if yaml_like else None)


def assemble(out: Path) -> Path:
    """Write the collection's tree under ``out``; returns the collection's directory."""
    qualify = Qualifier()
    dest = out / "collection" / "ansible_collections" / NAMESPACE / NAME
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)

    for repo_dir, collection_dir, suffixes in PLUGIN_DIRS:
        for path in sorted((ROOT / repo_dir).iterdir()):
            if path.suffix in suffixes and not path.name.startswith("_"):
                transform = qualify.python if path.suffix == ".py" else qualify.yaml
                _copy(path, dest / collection_dir / path.name, transform)
    _check_filter_import(dest / "plugins" / "filter" / "notification.py")

    for role in role_names():
        _copy_tree(ROOT / "roles" / role, dest / "roles" / role, qualify.yaml)
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        if path.name not in EXCLUDED_PLAYBOOKS:
            _copy(path, dest / "playbooks" / path.name, qualify.yaml)

    _copy_tree(ROOT / "collection", dest, qualify.yaml)
    (dest / "galaxy.yml.in").unlink()
    (dest / "galaxy.yml").write_text(_galaxy_yml(), encoding="utf-8")
    shutil.copyfile(ROOT / "LICENSE", dest / "LICENSE")
    for path in dest.rglob("*"):
        if path.is_symlink():  # never: _copy resolves them; ansible-test's symlinks check would refuse them
            raise BuildError(f"{path}: a symbolic link in the collection")
    return dest


def _check_filter_import(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if FILTER_IMPORT not in text:
        raise BuildError(f"{path.name}: no line {FILTER_IMPORT.strip()!r} to point at the collection's catalogue")
    path.write_text(text.replace(FILTER_IMPORT, FILTER_IMPORT_COLLECTION), encoding="utf-8")


def _galaxy_yml() -> str:
    template = (ROOT / "collection" / "galaxy.yml.in").read_text(encoding="utf-8")
    return template.replace("@VERSION@", version())


def build(out: Path, tarball: bool = True) -> Path:
    dest = assemble(out)
    if not tarball:
        return dest
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    command = [str(galaxy if galaxy.exists() else "ansible-galaxy"), "collection", "build", str(dest)]
    subprocess.run([*command, "--output-path", str(out), "--force"], check=True, stdout=subprocess.DEVNULL)
    path = out / f"{NAMESPACE}-{NAME}-{version()}.tar.gz"
    if not path.is_file():
        raise BuildError(f"ansible-galaxy did not write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output directory (default: build/)")
    parser.add_argument("--no-tarball", action="store_true", help="assemble the tree only, do not build the tarball")
    args = parser.parse_args(argv)
    try:
        result = build(args.out.resolve(), tarball=not args.no_tarball)
    except (BuildError, subprocess.CalledProcessError, OSError) as exc:
        print(f"build_collection: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
