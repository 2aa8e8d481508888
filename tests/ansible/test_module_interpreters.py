"""The modules on managed hosts whose Python is 3.8 to 3.13 with nothing installed (issue 23): every module of
library/ runs with real arguments on the shared sandbox host (tests/ansible/module_interpreters.yml, one
playbook run per interpreter, each result asserted there), its Python a virtual environment without packages
made from this machine's pyenv build of that version; the service keeps running on the project's Python.

Through the project's ansible.cfg, so its strategy (Mitogen: the modules run in a Python that Mitogen starts
with the host's interpreter) for every version; and, for the oldest and the newest, ansible-core's own
``linear`` strategy, where each module is an AnsiballZ zip of the module and the module_utils Ansible's finder
packs (what a plain ansible-core or a collection user runs). Each module documents the same Python."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.ansible.interpreters import OLDEST, VERSIONS, bare_python, base_interpreter, missing_reason
from tests.ansible.sandbox import SandboxHost
from tests.ansible.test_catalogue import CASES, health_result
from tests.conftest import ROOT

PLAYBOOK = ROOT / "tests" / "ansible" / "module_interpreters.yml"
# Modules that run on the managed host: one backed by an action plugin (notification_report) runs in the play on the
# control node, whose Python is the toolkit's own, so no host interpreter ever runs it.
MODULES = sorted(
    path for path in (ROOT / "library").glob("notification_*.py") if not (ROOT / "action_plugins" / path.name).exists()
)
RUNS = [pytest.param(version, "notification_linear", id=f"{version}-mitogen") for version in VERSIONS] + [
    pytest.param(version, "linear", id=f"{version}-ansiballz") for version in (VERSIONS[0], VERSIONS[-1])
]


@pytest.mark.parametrize(("version", "strategy"), RUNS)
def test_every_module_runs_on_a_bare_python(
    version: str, strategy: str, sandbox_host: SandboxHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = base_interpreter(version)
    if base is None:
        pytest.skip(missing_reason(version))
    python = bare_python(base, tmp_path / f"python{version}")
    changed, _, level, plan = CASES["websocket_service_down"]
    extra = {
        "ansible_python_interpreter": str(python),
        "interpreter_tag": version,
        "work_dir": str(tmp_path),
        "failing_health": health_result(*changed),
        "expected_level": level - 1,  # raised by 150 affected users
        "expected_plan": plan,
    }
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    monkeypatch.setenv("ANSIBLE_STRATEGY", strategy)
    backups = sandbox_host.root / "backups"
    before = sorted(path.name for path in backups.iterdir()) if backups.is_dir() else []
    # (Sandbox.playbook takes a playbook of playbooks/; an absolute path is taken as it is)
    run = sandbox_host.box.playbook(str(PLAYBOOK), "--limit", sandbox_host.name, f"-e@{tmp_path / 'vars.json'}")
    assert run.rc == 0, run.output[-4000:]
    assert run.recap[sandbox_host.name]["failed"] == 0 and run.recap[sandbox_host.name]["unreachable"] == 0
    ran = {path.stem for path in MODULES if f"({path.stem}" in run.stdout}
    ran |= {"notification_mode"} if "TASK [notification_service : Switch in one call" in run.stdout else set()
    assert ran == {path.stem for path in MODULES}, "a task of every module ran"
    assert sandbox_host.health()["status"] == "healthy"
    config = (sandbox_host.root / "etc" / "config.yml").read_text()
    assert re.search(r"^mode: websocket$", config, re.MULTILINE), "the planned switch (check mode) wrote nothing"
    after = sorted(path.name for path in backups.iterdir()) if backups.is_dir() else []
    assert after == before, "the host's own backups are untouched (this run's went to the test's directory)"
    assert not (sandbox_host.root / "state" / "toolkit.lock").exists(), "the lock was given back"


def _requirements(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DOCUMENTATION"]:
            doc = yaml.safe_load(ast.literal_eval(node.value))
            return list(doc.get("requirements") or [])
    raise AssertionError(f"{path.name} has no DOCUMENTATION")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_each_module_documents_the_python_it_is_tested_on(path: Path) -> None:
    assert _requirements(path)[0] == f"python >= {OLDEST}", _requirements(path)
    major, minor = (int(part) for part in OLDEST.split("."))
    ast.parse(path.read_text(), feature_version=(major, minor))
