"""The failure catalogue on managed hosts: its code and its data are shipped by module_utils symlinks, stay
stdlib only and Python 3.8 (run on every bare Python of tests/ansible/interpreters.py), and import each other by
the name they run under (package or host)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from notification_emergency import catalogue
from tests.ansible.interpreters import OLDEST, VERSIONS, bare_python, base_interpreter, missing_reason
from tests.ansible.test_catalogue import CASES, health_result
from tests.conftest import ROOT, VENV_BIN

# -- shipping: the code and its data, to managed hosts, Python 3.8 ----------------------------------------------

PACKAGE = ROOT / "src" / "notification_emergency"
LINKS = {"notification_catalogue.py": "catalogue.py", "notification_catalogue_data.py": "catalogue_data.py"}
SHIPPED = [
    PACKAGE / "catalogue.py",
    PACKAGE / "catalogue_data.py",
    ROOT / "module_utils/notification_emergency_state.py",
]
STDLIB = {
    "__future__",
    "collections",
    "copy",
    "datetime",
    "errno",
    "json",
    "os",
    "re",
    "stat",
    "tempfile",
    "typing",
    "yaml",
}


@pytest.mark.parametrize("link", list(LINKS))
def test_module_utils_links_to_the_one_catalogue(link: str) -> None:
    path = ROOT / "module_utils" / link
    assert path.is_symlink()
    assert os.readlink(path) == f"../src/notification_emergency/{LINKS[link]}"
    assert path.resolve() == (PACKAGE / LINKS[link]).resolve()
    assert Path(catalogue.__file__).resolve() == (PACKAGE / "catalogue.py").resolve()


def _imports(nodes: list[ast.stmt]) -> dict[str, set[str]]:
    """module -> the names imported from it, in these statements (not nested ones)."""
    found: dict[str, set[str]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            found.setdefault(node.module or "", set()).update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_code_is_python_38_syntax_and_stdlib_only(path: Path) -> None:
    """Stdlib, or a sibling shipped under ansible.module_utils; the package only in the ``else`` of an ``if``
    whose body imports the same names from the sibling (what runs on the host mirrors the package)."""
    tree = ast.parse(path.read_text(), feature_version=(3, 8))
    guarded: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            on_host, in_package = _imports(node.body), _imports(node.orelse)
            for module, names in in_package.items():
                sibling = "ansible.module_utils.notification_" + module.rpartition(".")[2]
                if module.startswith("notification_emergency.") and on_host.get(sibling) == names:
                    guarded[module] = names
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    for module in imported - set(guarded):
        if module.startswith("ansible.module_utils.notification_"):
            assert (ROOT / "module_utils" / (module.rpartition(".")[2] + ".py")).is_file(), module
        else:
            assert module.split(".")[0] in STDLIB, f"{path.name} imports {module}"
    assert path.name != "catalogue.py" or set(guarded) == {"notification_emergency.catalogue_data"}


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``bare(version)``: a bare Python of that version (made once per module), or the test is skipped."""

    def make(version: str) -> Path:
        base = base_interpreter(version)
        if base is None:
            pytest.skip(missing_reason(version))
        return bare_python(base, tmp_path_factory.getbasetemp() / "bare-pythons" / version)

    return make


@pytest.mark.parametrize("version", VERSIONS)
def test_the_catalogue_runs_on_every_bare_python(version: str, bare: Callable[[str], Path], tmp_path: Path) -> None:
    """As on a managed host: the module_utils files under ansible/module_utils/, a Python with no package."""
    python = bare(version)
    utils = tmp_path / "ansible" / "module_utils"
    utils.mkdir(parents=True)
    (tmp_path / "ansible" / "__init__.py").write_text("")
    (utils / "__init__.py").write_text("")
    for path in (ROOT / "module_utils").glob("notification_*.py"):
        shutil.copy(path, utils / path.name)  # follows the links: real files, as Ansible ships them
    changed, _, level, steps = CASES["websocket_service_down"]
    script = (
        "import json, sys\n"
        "from ansible.module_utils import notification_catalogue as c, notification_emergency_state as s\n"
        "r = c.classify(json.loads(sys.argv[1]), affected_users=['a', 'a'])\n"
        "s.plan_change(s.read_state('absent.json'), 'active', s.utc_now(), 2, 'r', 'me')\n"
        "assert not [m for m in sys.modules if m.startswith('notification_emergency')]\n"
        "print(json.dumps([r['level'], [x['id'] for x in r['plan']], c.FAILURE_COMPONENT, c.PRIORITIES]))\n"
    )
    run = subprocess.run(
        [python, "-c", script, json.dumps(health_result(*changed))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [level, steps, catalogue.FAILURE_COMPONENT, list(catalogue.PRIORITIES)]


def test_ansible_ships_the_code_and_its_data_to_a_bare_python_host(bare: Callable[[str], Path], tmp_path: Path) -> None:
    """A real module run: Ansible's module_utils finder packs notification_catalogue and, from its guarded
    import, notification_catalogue_data; the host's Python (the oldest the modules support) has nothing
    installed (no notification_emergency). Every module on every version: test_module_interpreters.py."""
    python = bare(OLDEST)
    changed, _, level, steps = CASES["redis_unavailable"]
    args = {"health": health_result(*changed), "affected_users": 150, "host": "sandbox-01"}
    command = [VENV_BIN / "ansible", "all", "-i", "sandbox-01,", "-c", "local", "-m", "notification_classify"]
    run = subprocess.run(
        [*command, "-e", f"ansible_python_interpreter={python}", "-a", json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # library and module_utils come from ansible.cfg
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        },
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.startswith("sandbox-01 | SUCCESS => {"), run.stdout[:300]
    result = json.loads(run.stdout.partition(" => ")[2])
    assert result["primary"] == "redis_unavailable" and result["level"] == level - 1, "raised by 150 users"
    assert [step["id"] for step in result["plan"]] == steps
    assert result["catalogue_version"] == catalogue.CATALOGUE_VERSION
