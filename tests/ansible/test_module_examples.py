"""The modules' EXAMPLES run for real on a sandbox host.

Paths in the examples (/srv/notification, /srv/sandbox-01) are pointed at the sandbox host's root. Examples
that need what this machine does not have are left out, each for a stated reason: systemd (no systemd runs
here; the systemd backend is covered by the notification_services unit tests' argument checks only) and
hosts of example.com (a production database that does not exist here).
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.ansible.conftest import SandboxHost
from tests.conftest import ROOT

# In the order a playbook would use them: check, classify, switch emergency mode, control services.
MODULES = ["notification_health", "notification_classify", "notification_emergency_state", "notification_services"]
UNAVAILABLE_HERE = {"manager: systemd": "no systemd on this machine", "example.com": "no such production host"}


def examples(module: str) -> list[dict[str, object]]:
    tree = ast.parse((ROOT / "library" / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES":
            return list(yaml.safe_load(ast.literal_eval(node.value)))
    raise AssertionError(f"{module} has no EXAMPLES")


def runnable(task: dict[str, object]) -> bool:
    text = yaml.safe_dump(task)
    return not any(marker in text for marker in UNAVAILABLE_HERE)


def test_examples_run_on_a_sandbox_host(sandbox_host: SandboxHost, tmp_path: Path) -> None:
    tasks = [task for module in MODULES for task in examples(module) if runnable(task)]
    ran = {module for module in MODULES for task in tasks if module in task}
    assert ran == set(MODULES), "every module has at least one example that runs here"
    text = yaml.safe_dump(
        [
            {
                "name": "Run the module examples",
                "hosts": "sandbox-01",
                "gather_facts": False,
                "vars": {"__notification_affected_user_ids": ["alice", "bob", "alice"]},
                "tasks": tasks,
            }
        ],
        sort_keys=False,
    )
    root = str(sandbox_host.root)
    playbook = tmp_path / "examples.yml"
    playbook.write_text(text.replace("/srv/sandbox-01", root).replace("/srv/notification", root))
    run = sandbox_host.box.playbook(str(playbook))
    assert run.rc == 0, run.output[-4000:]
    assert run.recap["sandbox-01"]["failed"] == 0
    # The emergency examples activate and then resolve emergency mode: it ends inactive, with an audit trail.
    assert sandbox_host.health()["emergency"]["active"] is False
    audit = (sandbox_host.root / "state" / "emergency-audit.log").read_text().splitlines()
    assert len(audit) >= 2
