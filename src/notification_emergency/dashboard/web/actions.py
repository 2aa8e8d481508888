"""The controls: the actions and their jobs (GET), and starting one (POST /api/actions, operators only).

Every control goes to the audit trail with the user: requested (before it starts: an action the audit trail
cannot hold does not run), then succeeded or failed (by the job), and every refusal.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from notification_emergency.dashboard.jobs import ACTIONS, Conflict
from notification_emergency.dashboard.users import User
from notification_emergency.dashboard.web.inputs import json_body
from notification_emergency.dashboard.web.security import (
    current_dashboard,
    current_gate,
    error,
    require_csrf,
    require_login,
)
from notification_emergency.errors import BadInput

actions = Blueprint("actions", __name__, url_prefix="/api/actions")

FIELDS = frozenset({"action", "hosts", "inputs", "confirmed"})


@actions.get("")
@require_login(basic=True)
def list_actions() -> Response:
    return jsonify(
        {
            "actions": {name: {"label": spec.label, "kind": spec.kind} for name, spec in ACTIONS.items()},
            "jobs": current_dashboard().jobs.to_json(),
        }
    )


@actions.get("/<job_id>")
@require_login(basic=True)
def job(job_id: str) -> Response:
    found = current_dashboard().jobs.get(job_id)
    if found is None:
        return error(404, f"no dashboard action {job_id} (the dashboard keeps the last few)")
    return jsonify(found.to_json())


def _request(user: User) -> dict[str, Any] | Response:
    """The checked request body; a 403 Response for a viewer (told before anything about the body)."""
    body_error: BadInput | None = None
    try:
        body = json_body()
    except BadInput as exc:
        body, body_error = None, exc
    if not user.can_act:
        action = body.get("action") if isinstance(body, dict) else None
        named = action if isinstance(action, str) and action in ACTIONS else "action"
        current_gate().audit_if_possible(
            user.name, f"dashboard {named} refused", "dashboard", {"role": user.role, "reason": "viewer"}
        )
        return error(403, f"{user.name} is a viewer: only operators can run controls")
    if body_error is not None:
        raise body_error
    if not isinstance(body, dict):
        raise BadInput(
            'the request body must be a JSON object: {"action": NAME, "hosts": [HOST, ...], "inputs": {...}}'
        )
    unknown = set(body) - FIELDS
    if unknown:
        raise BadInput(
            f"the request body has unknown fields {', '.join(sorted(map(str, unknown)))[:500]}; "
            "it takes action, hosts, inputs and confirmed"
        )
    if not isinstance(body.get("confirmed", False), bool):
        raise BadInput("confirmed must be true or false")
    return body


@actions.post("")
@require_login()
@require_csrf
def act() -> Response:
    """``{"action", "hosts"?, "inputs"?, "confirmed"?}``: without ``confirmed: true`` the answer is the
    confirmation text (what will happen, on which hosts); with it, the action starts (202)."""
    user: User = g.user
    body = _request(user)
    if isinstance(body, Response):
        return body
    jobs, gate = current_dashboard().jobs, current_gate()
    spec, hosts, inputs = jobs.prepare(body.get("action"), body.get("hosts"), body.get("inputs"))
    description = spec.describe(hosts, inputs, user.name)
    busy = jobs.conflict(hosts)
    if not body.get("confirmed", False):
        return jsonify(
            {
                "ok": True,
                "confirm": description,
                "action": spec.name,
                "label": spec.label,
                "kind": spec.kind,
                "hosts": hosts,
                "inputs": inputs,
                "busy": f"{busy.label} by {busy.user} is running on {', '.join(busy.hosts)}" if busy else None,
            }
        )
    # Recorded before it starts: an action the audit trail cannot hold does not run.
    job_id = jobs.new_id()
    gate.audit(
        user.name, f"dashboard {spec.name}", ", ".join(hosts), {"role": user.role, "inputs": inputs, "job": job_id}
    )
    try:
        started = jobs.start(spec, hosts, inputs, user.name, job_id)
    except Conflict as exc:
        details = {"reason": exc.message, "job": job_id}
        gate.audit(user.name, f"dashboard {spec.name} refused", ", ".join(hosts), details)
        return error(409, exc.message)
    response = jsonify({"ok": True, "job": started.to_json()})
    response.status_code = 202
    return response


@actions.post("/<job_id>/cancel")
@require_login()
@require_csrf
def cancel(job_id: str) -> Response:
    """Cancel a running action (operators): ansible-playbook is stopped, the run recorded ``canceled``."""
    user: User = g.user
    jobs, gate = current_dashboard().jobs, current_gate()
    if not user.can_act:
        gate.audit_if_possible(
            user.name, "dashboard cancel refused", "dashboard", {"role": user.role, "reason": "viewer"}
        )
        return error(403, f"{user.name} is a viewer: only operators can cancel actions")
    found = jobs.get(job_id)
    if found is None:
        return error(404, f"no dashboard action {job_id[:80]!r}: give the id of a running action (GET /api/actions)")
    if found.state != "running":
        return error(409, f"{found.label} ({found.id}) is not running: it {found.state}; nothing to cancel")
    gate.audit(user.name, f"dashboard {found.action} cancel", ", ".join(found.hosts), {"job": found.id})
    try:
        canceled = jobs.cancel(job_id, user.name)
    except Conflict as exc:  # it ended in between
        return error(409, exc.message)
    response = jsonify({"ok": True, "job": canceled.to_json()})
    response.status_code = 202
    return response


__all__ = ["actions"]
