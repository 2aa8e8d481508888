# Copyright: notification-emergency contributors
# MIT License (see LICENSE)
"""Action plugin of notification_report: write a run's report on the control node, in the play's own process.

The report was written by ansible.builtin.file and ansible.builtin.copy delegated to localhost: two module runs,
whose first one starts a Python on the control node (under Mitogen: a whole local connection), about 1.1 s of
every playbook's wall time on this machine. An action plugin writes the file where it runs, the control node, with
no module and no connection. The documentation is library/notification_report.py.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

ARGS = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str", "required": True},
    "mode": {"type": "raw", "default": "0640"},
    "directory_mode": {"type": "raw", "default": "0750"},
}


def _mode(value: Any, name: str) -> int:
    """An octal file mode given as a string ("0640") or an int written in octal (0o640)."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise AnsibleActionFail(f'{name} {value!r} is not an octal file mode; write it quoted, like "0640"') from None


def write_report(path: str, content: str, mode: int, directory_mode: int) -> dict[str, Any]:
    """Write ``content`` to ``path`` at once (a temporary file renamed over it): a reader sees the old report or
    the new one, never a part. The directory is created (``directory_mode``) when missing."""
    directory = os.path.dirname(path) or "."
    created = not os.path.isdir(directory)
    if created:
        os.makedirs(directory, mode=directory_mode, exist_ok=True)
    if os.path.islink(path):
        raise AnsibleActionFail(f"{path} is a symbolic link; a report is written as a file of its own, remove the link")
    handle, temp = tempfile.mkstemp(prefix=".report-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(to_bytes(content, errors="surrogate_or_strict"))
        os.chmod(temp, stat.S_IMODE(mode))
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return {"path": path, "size": len(to_bytes(content, errors="surrogate_or_strict")), "directory_created": created}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = False  # skipped in check mode, unless the task says check_mode: false (the role's does)
    _requires_connection = False  # ansible-core 2.16+: nothing on the host, no connection is made

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        try:
            written = write_report(
                args["path"],
                args["content"],
                _mode(args["mode"], "mode"),
                _mode(args["directory_mode"], "directory_mode"),
            )
        except OSError as exc:
            raise AnsibleActionFail(
                f"cannot write the report {args['path']}: {exc.strerror or exc}; check the reports directory "
                "(notification_run_reports_dir) and its permissions"
            ) from None
        result.update(written)
        result["changed"] = True
        return result
