"""The typed results the package passes between its layers: what the health playbook reports per host
(:class:`CheckResult`, :class:`HostHealth`, the shape of docs/health-result.md), and the outcome of every API
action (:class:`ActionResult`, whose ``to_json()`` is the CLI's documented ``--json`` shape)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from notification_emergency.errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT
from notification_emergency.runner import RunResult

Status = Literal["healthy", "degraded", "failed"]


class CheckResult(TypedDict, total=False):
    """One check of a host's health result (docs/health-result.md)."""

    name: str
    component: str  # web | websocket | redis | database | config | templates | disk | host
    kind: str  # http | websocket | redis | database | tcp | process | disk | file
    critical: bool
    status: Status
    latency_ms: float | None
    error: str | None
    reason: str | None
    evidence: dict[str, Any]


class HostHealth(TypedDict, total=False):
    """One host as the health playbook publishes it (``set_stats`` ``notification_health``): its health
    result, classified."""

    overall: Status
    mode: str
    emergency: dict[str, Any]
    level: int | None
    level_name: str | None
    response: str | None
    primary: str | None
    failures: list[str]
    plan: list[str]
    summary: str
    failed_checks: list[str]
    degraded_checks: list[str]
    checks: dict[str, CheckResult]
    checked_at: str
    duration_ms: float


class HostRow(HostHealth, total=False):
    """One host in an :class:`ActionResult` of a health check: its health plus ``status`` (the overall
    health, or ``unreachable``/``unknown`` when it gave no result) and the incident it opened or joined."""

    status: str
    incident: int


@dataclass
class ActionResult:
    """The outcome of one API action; ``to_json()`` is the documented ``--json`` shape of the CLI."""

    action: str
    ok: bool
    exit_code: int
    message: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per host: status plus what the action says
    run: RunResult | None = None
    report: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)  # action-specific (incidents opened, statistics, files)

    def to_json(self) -> dict[str, Any]:
        run = None
        if self.run is not None:
            run = {
                "run_id": self.run.run_id,
                "playbook": self.run.playbook,
                "status": self.run.status,
                "rc": self.run.rc,
                "duration_s": round(self.run.duration_s, 3),
                "artifact_dir": str(self.run.artifact_dir),
                "recap": {host: asdict(recap) for host, recap in self.run.hosts.items()},
            }
        return {
            "action": self.action,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "message": self.message,
            "hosts": self.hosts,
            "run": run,
            **({"report": self.report} if self.report is not None else {}),
            **self.data,
        }


def exit_code_of(run: RunResult) -> int:
    """The CLI's exit code for a playbook run's outcome."""
    if run.ok:
        return EXIT_OK
    if run.status == "timeout":
        return EXIT_TIMEOUT
    if run.status == "canceled":
        return EXIT_CANCELLED
    return EXIT_FAILED
