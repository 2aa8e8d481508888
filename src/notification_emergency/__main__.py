"""``python -m notification_emergency``: the CLI (the playbooks use it to record their runs)."""

from notification_emergency.cli import run

run()
