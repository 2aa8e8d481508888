"""The Ansible collection notification.emergency as a user gets it: `make collection`'s tarball, installed with
`ansible-galaxy collection install` into a Python that has nothing but ansible-core (no toolkit package, no
project ansible.cfg), its modules, filters, roles and playbooks run by their FQCN against a sandbox host whose
Python for modules is a bare interpreter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible import interpreters
from tests.ansible.interpreters import VERSIONS, base_interpreter, missing_reason
from tests.ansible.sandbox import SandboxHost, parse_recap
from tests.conftest import ROOT, VENV_BIN

sys.path.insert(0, str(ROOT / "scripts"))
import build_collection  # the build script is what `make collection` runs

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CONSTRAINTS = (ROOT / "requirements/constraints.txt").read_text().splitlines()
CORE_PIN = next(line.strip() for line in CONSTRAINTS if line.startswith("ansible-core=="))
MODULES = sorted(path.stem for path in (ROOT / "library").glob("*.py"))
FILTERS = sorted(path.stem for path in (ROOT / "filter_plugins").glob("*.yml"))
PREFIX = "ansible_collections/notification/emergency/"


def bare_python(home: Path) -> str:
    """A managed host's Python: a venv with no package of pyenv's 3.9 (RHEL 9's), else the oldest there is."""
    for version in ("3.9", *VERSIONS):
        base = base_interpreter(version)
        if base is not None:
            return str(interpreters.bare_python(base, home))
    pytest.skip(missing_reason("3.9") + ", nor any other 3.8-3.13: the managed host's interpreter is missing")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collection-build")
    built = subprocess.run(
        [str(VENV_BIN / "python"), str(ROOT / "scripts/build_collection.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    path = Path(built.stdout.strip())
    assert path == out / f"notification-emergency-{VERSION}.tar.gz"
    return path


class CoreOnly:
    """A Python with nothing but ansible-core (the pinned version) and the collection installed from the tarball."""

    def __init__(self, root: Path, tarball: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.collections = root / "collections"
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        subprocess.run(
            [str(self.bin / "pip"), "install", "--quiet", "--disable-pip-version-check", CORE_PIN],
            check=True,
            capture_output=True,
        )
        installed = self.run("ansible-galaxy", "collection", "install", str(tarball), "-p", str(self.collections))
        assert installed.returncode == 0, installed.stdout + installed.stderr

    def env(self) -> dict[str, str]:
        """No project ansible.cfg, no ANSIBLE_* of the project: only what a user of the collection has."""
        return {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
        }

    def run(self, command: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / command), *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def core_only(tmp_path_factory: pytest.TempPathFactory, tarball: Path) -> CoreOnly:
    return CoreOnly(tmp_path_factory.mktemp("core-only"), tarball)


# -- the tarball -------------------------------------------------------------------------------------------------


def test_the_tarball_holds_the_collection_layout_and_the_projects_version(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        members = {member.name: member for member in archive.getmembers()}
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert manifest["collection_info"]["namespace"] == "notification"
    assert manifest["collection_info"]["name"] == "emergency"
    assert manifest["collection_info"]["version"] == VERSION
    assert manifest["collection_info"]["license"] == ["MIT"]
    names = set(members)
    assert {f"plugins/modules/{name}.py" for name in MODULES} <= names
    assert {f"plugins/filter/{name}.yml" for name in FILTERS} | {"plugins/filter/notification.py"} <= names
    assert {"meta/runtime.yml", "LICENSE", "README.md", "plugins/strategy/notification_linear.py"} <= names
    assert "plugins/module_utils/notification_catalogue_data.py" in names  # a link in the repository, a file here
    assert "roles/notification_service/files/app_templates/legacy/base.html" in names
    assert not [name for name, member in members.items() if member.issym() or member.islnk()]
    # left out on purpose: the sandbox and the playbooks that drive the toolkit's Python package
    assert not [name for name in names if "sandbox" in name or name.endswith(("auto_recover.yml", "notify.yml"))]
    assert yaml.safe_load((ROOT / "collection/meta/runtime.yml").read_text())["requires_ansible"].startswith(">=")


def test_every_reference_in_the_collection_is_fully_qualified(tmp_path: Path) -> None:
    """No short module, filter or role name, no ansible.module_utils import of ours, no toolkit package import."""
    tree = build_collection.assemble(tmp_path)
    short_task = re.compile(rf"^\s*(?:-\s+)?({'|'.join(MODULES)}):", re.MULTILINE)
    short_filter = re.compile(rf"\|\s*({'|'.join(FILTERS)})\b")
    short_role = re.compile(r"^\s*(?:-\s+)?(?:name|role):\s+(notification_\w+)\s*$", re.MULTILINE)
    problems = []
    for path in sorted(tree.rglob("*")):
        if path.suffix not in (".py", ".yml", ".md") or path.is_dir():
            continue
        text = path.read_text()
        where = path.relative_to(tree)
        problems += [f"{where}: task {m.group(1)}" for m in short_task.finditer(text)]
        problems += [f"{where}: filter {m.group(1)}" for m in short_filter.finditer(text)]
        if where.parts[0] in ("roles", "playbooks"):
            problems += [f"{where}: role {m.group(1)}" for m in short_role.finditer(text)]
        if path.suffix == ".py":
            problems += [f"{where}: import" for _ in re.finditer(r"ansible\.module_utils\.notification_", text)]
            # the catalogue's branch for the package's own name, never taken under the collection's name
            if where.name != "notification_catalogue.py":
                problems += [f"{where}: package" for _ in re.finditer(r"^\s*from notification_emergency", text, re.M)]
    assert problems == []
    rollback = (tree / "playbooks/rollback_to_legacy.yml").read_text()
    assert "name: notification.emergency.notification_run" in rollback


# -- with nothing but ansible-core -------------------------------------------------------------------------------


def test_the_core_only_python_has_no_toolkit(core_only: CoreOnly) -> None:
    probe = subprocess.run([str(core_only.bin / "python"), "-c", "import notification_emergency"], capture_output=True)
    assert probe.returncode != 0
    listed = core_only.run("ansible-galaxy", "collection", "list", "notification.emergency")
    assert f"notification.emergency {VERSION}" in re.sub(r"\s+", " ", listed.stdout)


def test_ansible_doc_shows_every_module_and_filter_by_its_fqcn(core_only: CoreOnly) -> None:
    for name in MODULES:
        shown = core_only.run("ansible-doc", f"notification.emergency.{name}")
        assert shown.returncode == 0, shown.stderr
        assert f"notification.emergency.{name}:" in shown.stdout or "EXAMPLES" in shown.stdout
    for name in FILTERS:
        shown = core_only.run("ansible-doc", "-t", "filter", f"notification.emergency.{name}")
        assert shown.returncode == 0, shown.stderr
        assert f"notification.emergency.{name}" in shown.stdout


def _inventory(host: SandboxHost, path: Path, python: str) -> Path:
    """The sandbox host as an inventory of the user's: its variables, its Python a bare interpreter."""
    group_vars = yaml.safe_load((host.box.inventory / "hosts.yml").read_text())["all"]["children"]["sandbox"]["vars"]
    # the group's values but its lookups (the credentials, read from their files below)
    variables: dict[str, Any] = {
        key: value for key, value in group_vars.items() if not (isinstance(value, str) and "{{" in value)
    }
    variables.update(host.vars)
    credentials = Path(variables["notification_sandbox_home"]) / "credentials"
    variables.update(
        ansible_connection="local",
        ansible_python_interpreter=python,
        notification_service_api_token=(credentials / f"{host.name}-api_token").read_text().split()[0],
        notification_service_secret_key=(credentials / f"{host.name}-secret_key").read_text().split()[0],
    )
    variables["notification_service_redis_url"] = f"redis://127.0.0.1:{variables['notification_sandbox_redis_port']}/0"
    inventory = {"all": {"children": {"notification_hosts": {"hosts": {host.name: variables}}}}}
    path.write_text(yaml.safe_dump(inventory))
    return path


def _mode(host: SandboxHost) -> Any:
    return yaml.safe_load((host.root / "etc" / "config.yml").read_text())["mode"]


def test_modules_filters_roles_and_playbooks_run_with_only_ansible_core(
    core_only: CoreOnly, sandbox_host: SandboxHost, tmp_path: Path
) -> None:
    python = bare_python(tmp_path / "bare-python")
    inventory = _inventory(sandbox_host, tmp_path / "hosts.yml", python)
    playbook = tmp_path / "check.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Check and classify with the collection",
                    "hosts": "notification_hosts",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Health",
                            "notification.emergency.notification_health": {
                                "config": str(sandbox_host.root / "etc" / "config.yml")
                            },
                            "register": "health",
                        },
                        {
                            "name": "Classify",
                            "notification.emergency.notification_classify": {"health": "{{ health }}"},
                            "register": "classified",
                        },
                        {
                            "name": "Show",
                            "ansible.builtin.debug": {
                                "msg": "RESULT {{ {'overall': health.overall, 'python': ansible_facts.python_version"
                                " | default(''), 'level': classified.level | notification.emergency."
                                "notification_level_name} | to_json }}"
                            },
                        },
                    ],
                }
            ]
        )
    )
    checked = core_only.run("ansible-playbook", "-i", str(inventory), str(playbook))
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    result = json.loads(re.search(r'"RESULT (\{.*\})"', checked.stdout).group(1).replace('\\"', '"'))  # type: ignore[union-attr]
    assert result["overall"] == "healthy" and result["level"] == "none"

    assert _mode(sandbox_host) == "websocket"
    try:
        rollback = core_only.run("ansible-playbook", "-i", str(inventory), "notification.emergency.rollback_to_legacy")
        assert rollback.returncode == 0, rollback.stdout[-4000:] + rollback.stderr[-2000:]
        assert "ok legacy" in rollback.stdout and _mode(sandbox_host) == "legacy"
        assert sandbox_host.health()["status"] == "healthy"
        again = core_only.run("ansible-playbook", "-i", str(inventory), "notification.emergency.rollback_to_legacy")
        assert again.returncode == 0, again.stdout[-3000:]
        assert parse_recap(again.stdout)[sandbox_host.name]["changed"] == 0, again.stdout[-3000:]
        reports_dir = core_only.root / ".local/state/notification-emergency/reports"
        reports = list(reports_dir.glob("rollback_to_legacy-*.json"))
        assert len(reports) == 2  # the user's own reports directory, not the installed collection's
    finally:
        restore = core_only.run("ansible-playbook", "-i", str(inventory), "notification.emergency.restore")
        if restore.returncode != 0:  # put the shared host back the project's way, then fail
            sandbox_host.box.playbook("restore.yml")
        assert restore.returncode == 0, restore.stdout[-4000:] + restore.stderr[-2000:]
    assert _mode(sandbox_host) == "websocket"
