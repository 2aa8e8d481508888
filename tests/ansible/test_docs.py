"""Every module and the strategy and callback plugins document themselves for ansible-doc; role READMEs match
their argument specs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN

NOCOLOR = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
MODULES = sorted(p.stem for p in (ROOT / "library").glob("*.py"))
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_shows_the_module(module: str) -> None:
    doc = subprocess.run(
        [VENV_BIN / "ansible-doc", "-M", ROOT / "library", module],
        capture_output=True,
        text=True,
        check=False,
        env=NOCOLOR,
    )
    assert doc.returncode == 0, doc.stderr
    assert "OPTIONS" in doc.stdout and "EXAMPLES" in doc.stdout and "RETURN VALUES" in doc.stdout
    tree = ast.parse((ROOT / "library" / f"{module}.py").read_text())
    docs = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert {"DOCUMENTATION", "EXAMPLES", "RETURN"} <= docs.keys()
    examples = yaml.safe_load(docs["EXAMPLES"])
    assert examples and all(task.get("name") for task in examples), "every example is a named task"


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_the_role(role: str) -> None:
    doc = subprocess.run(
        [VENV_BIN / "ansible-doc", "-t", "role", "-r", ROOT / "roles", role],
        capture_output=True,
        text=True,
        check=False,
        env=NOCOLOR,
    )
    assert doc.returncode == 0, doc.stderr
    assert "ENTRY POINT: *" in doc.stdout


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("strategy", "notification_linear", ["NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY=1", "interpreter"]),
        ("callback", "notification_guard", ["NOTIFICATION_EMERGENCY_PARENT_PID", "PR_SET_PDEATHSIG"]),
    ],
)
def test_ansible_doc_shows_the_plugins(kind: str, name: str, expected: list[str]) -> None:
    """Their DOCUMENTATION is YAML that ansible-doc parses (a stray ": " in a description breaks it)."""
    doc = subprocess.run(
        [VENV_BIN / "ansible-doc", "-t", kind, name],
        capture_output=True,
        text=True,
        check=False,
        env={**NOCOLOR, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
    )
    assert doc.returncode == 0, doc.stderr
    for text in expected:
        assert text in doc.stdout, (name, text)


def test_role_readmes_match_the_argument_specs() -> None:
    check = subprocess.run(
        [sys.executable, ROOT / "scripts" / "role_docs.py", "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_the_catalogue_page_matches_the_catalogue() -> None:
    check = subprocess.run(
        [sys.executable, ROOT / "scripts" / "catalogue_docs.py", "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
