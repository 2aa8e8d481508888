"""Runs: every playbook run, who started it, with what inputs, on which hosts, and how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..process import owner_alive
from ..redact import redact
from ..timeutil import iso, seconds_between
from .common import utc
from .engine import StoreEngine
from .schema import RUNS


class RunRecords(StoreEngine):
    """The ``runs`` table: a run is started, finished, or found abandoned by its dead process."""

    def start_run(
        self,
        run_id: str,
        *,
        action: str,
        playbook: str | None,
        actor: str,
        inputs: dict[str, Any],
        limit: str | None,
        check: bool,
        incident_id: int | None = None,
        started_at: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        """Record that run ``run_id`` started (status ``running``); a run id already recorded is a ValueError.
        ``owner``: the process running it (:func:`~notification_emergency.process.current_owner`)."""
        with self._write() as conn:
            if conn.execute(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first():
                raise ValueError(f"run {run_id} is already recorded")
            conn.execute(
                RUNS.insert().values(
                    run_id=run_id,
                    action=action,
                    playbook=playbook,
                    actor=actor,
                    inputs=redact(inputs or {}),
                    host_limit=limit,
                    check_mode=bool(check),
                    incident_id=incident_id,
                    started_at=utc(started_at),
                    status="running",
                    owner=owner,
                )
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        rc: int,
        hosts: dict[str, dict[str, Any]],
        report: dict[str, Any] | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Record the outcome of run ``run_id`` (``status``: successful, failed, timeout, canceled...)."""
        with self._write() as conn:
            done = conn.execute(
                RUNS.update()
                .where(RUNS.c.run_id == run_id)
                .values(
                    status=status,
                    rc=rc,
                    hosts=hosts,
                    report=redact(report) if report is not None else None,
                    finished_at=utc(finished_at),
                )
            )
            if done.rowcount == 0:
                raise ValueError(f"run {run_id} was never started in the event store")

    def reconcile_runs(self) -> list[str]:
        """Record as ``abandoned`` each run still ``running`` whose process is gone (killed, crashed, its
        machine rebooted): without this it would stay running forever, in ``status`` and in ``/metrics``.
        Runs of other control nodes are left alone (they cannot be checked from here). Returns the run ids."""
        with self._read() as conn:
            running = conn.execute(sa.select(RUNS.c.run_id, RUNS.c.owner).where(RUNS.c.status == "running")).all()
        gone = [run_id for run_id, owner in running if owner_alive(owner) is False]
        if gone:
            with self._write() as conn:
                conn.execute(
                    RUNS.update()
                    .where(RUNS.c.run_id.in_(gone), RUNS.c.status == "running")
                    .values(status="abandoned", finished_at=utc(None))
                )
        return gone

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run ``run_id``, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
        return run_dict(row) if row else None

    def runs(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Runs started at or after ``since``, newest first."""
        query = sa.select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
        if since is not None:
            query = query.where(RUNS.c.started_at >= utc(since))
        with self._read() as conn:
            return [run_dict(row) for row in conn.execute(query).mappings()]


def run_dict(row: sa.RowMapping) -> dict[str, Any]:
    finished = row["finished_at"] is not None
    status = row["status"]
    if status == "running" and owner_alive(row.get("owner")) is False:
        status = "abandoned"  # what reconcile_runs will record; read-only commands say so without writing
    ok_unfinished = None if status == "running" else False
    return {
        "run_id": row["run_id"],
        "action": row["action"],
        "playbook": row["playbook"],
        "actor": row["actor"],
        "inputs": row["inputs"],
        "limit": row["host_limit"],
        "check": bool(row["check_mode"]),
        "incident_id": row["incident_id"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "duration_s": seconds_between(row["started_at"], row["finished_at"]),
        "status": status,
        "rc": row["rc"],
        "owner": row.get("owner"),
        "ok": (row["status"] == "successful" and row["rc"] == 0) if finished else ok_unfinished,
        "hosts": row["hosts"],
        "report": row["report"],
    }
