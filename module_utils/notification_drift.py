"""Drift between the service's config.yml and the desired state (the inventory): where the service is deployed
to answer (web and WebSocket host and port, the WebSocket public URL) against where config.yml makes it answer.

The health module takes the desired state from the playbook (the inventory's variables), checks the service
where the inventory says it is, and reports a difference here as a failed ``config`` check with reason
``drift``: then the direct probes (which read the inventory), the dashboard and the health module agree.

Needs PyYAML (like every reader of config.yml); otherwise standard library only, Python 3.8+.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.notification_common import CheckProblem, HealthArgumentError
from ansible.module_utils.notification_service_config import read_yaml

# The module's ``desired`` suboptions and the config.yml key each one is compared with.
DESIRED_KEYS = {
    "web_host": "web.host",
    "web_port": "web.port",
    "websocket_host": "websocket.host",
    "websocket_port": "websocket.port",
    "websocket_public_url": "websocket.public_url",
}


def desired_values(desired: dict[str, Any] | None) -> dict[str, Any]:
    """The config.yml keys (dotted) and the values the desired state gives them (the ones given)."""
    return {DESIRED_KEYS[name]: value for name, value in (desired or {}).items() if value not in (None, "")}


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str) and isinstance(wanted, str):
        return actual.strip().rstrip("/") == wanted.strip().rstrip("/")
    return actual is not None and str(actual) == str(wanted)


def differences(data: Any, wanted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each key whose value in config.yml (``data``) is not the desired one: {key: {config, desired}}."""
    return {
        key: {"config": _lookup(data, key), "desired": value}
        for key, value in sorted(wanted.items())
        if not _same(_lookup(data, key), value)
    }


def check_drift(path: str, wanted: dict[str, Any], evidence: dict[str, Any]) -> None:
    """The ``desired`` option of a file check: config.yml at ``path`` must have the desired values."""
    try:
        data = read_yaml(path, "config")
    except HealthArgumentError as exc:  # unreadable or not YAML: the config check reports that
        raise CheckProblem("error", f"cannot compare {path} with the desired state: {exc}") from None
    drift = differences(data, wanted)
    evidence["desired"] = dict(sorted(wanted.items()))
    evidence["drift"] = drift
    if drift:
        shown = ", ".join(f"{key} is {entry['config']!r}, desired {entry['desired']!r}" for key, entry in drift.items())
        raise CheckProblem("drift", f"{path} drifted from the desired state (the inventory): {shown}")
