"""The notification_report action plugin: a run's report written on the control node, in the play's process.

The plugin replaced ansible.builtin.file + ansible.builtin.copy delegated to localhost (two module start-ups and,
under Mitogen, a local connection: about 1.1 s of every run). These tests run it through a real ansible-playbook on
the control node (no host is reached), and its write function directly for the cases a playbook cannot set up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

_SPEC = importlib.util.spec_from_file_location("action_report", ROOT / "action_plugins" / "notification_report.py")
assert _SPEC is not None and _SPEC.loader is not None
plugin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(plugin)
write_report = plugin.write_report

PLAYBOOK = """
- name: Write a report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write it
      notification_report:
        path: "{{ target }}"
        content: "{{ report | to_nice_json }}\\n"
      register: written

    - name: Show what was written
      ansible.builtin.debug:
        var: written
"""


def run_playbook(tmp_path: Path, target: Path, report: object) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "report.yml"
    playbook.write_text(PLAYBOOK)
    # The report's values come from hosts and operators: passed the way the toolkit passes them, as unsafe data.
    extra = tmp_path / "extra.yml"
    extra.write_text(f"target: {json.dumps(str(target))}\nreport: !unsafe {json.dumps(report)}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), f"-e@{extra}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_a_playbook_writes_the_report_as_data_with_its_directory(tmp_path: Path) -> None:
    hostile = "{{ lookup('ansible.builtin.pipe', 'touch " + str(tmp_path / "pwned") + "') }}"
    target = tmp_path / "reports" / "nested" / "run.json"
    report = {"hosts": [{"host": "h1", "line": hostile}], "reason": "$(id) `id`"}
    done = run_playbook(tmp_path, target, report)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(target.read_text()) == report  # the text as typed, never rendered
    assert not (tmp_path / "pwned").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o750
    assert target.read_text().endswith("}\n")
    # Nothing but the report is left in the directory (the temporary file was renamed over it).
    assert [path.name for path in target.parent.iterdir()] == ["run.json"]


def test_a_second_report_replaces_the_first_whole(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_report(str(target), "x" * 100000, 0o640, 0o750)
    inode = target.stat().st_ino
    write_report(str(target), "short\n", 0o600, 0o750)
    assert target.read_text() == "short\n"
    assert target.stat().st_ino != inode  # a new file renamed over the old one, not the old one rewritten
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_symbolic_link_at_the_report_path_is_refused_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    target = tmp_path / "reports" / "run.json"
    target.parent.mkdir()
    target.symlink_to(victim)
    done = run_playbook(tmp_path, target, {"hosts": []})
    assert done.returncode != 0
    assert "is a symbolic link" in done.stdout and "remove the link" in done.stdout
    assert victim.read_text() == "keep me\n"
    assert target.is_symlink()


def test_a_bad_mode_names_the_input_and_the_fix(tmp_path: Path) -> None:
    from ansible.errors import AnsibleActionFail

    with pytest.raises(AnsibleActionFail, match=r'mode .*not an octal file mode; write it quoted, like "0640"'):
        plugin._mode("rw-r-----", "mode")
    assert plugin._mode("0640", "mode") == 0o640
    assert plugin._mode(0o600, "mode") == 0o600
