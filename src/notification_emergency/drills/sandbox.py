"""What a drill needs of a sandbox host: the refusal of any other host, its own supervisorctl, the pids and
ports a fault aims at, and what a drill uses of the toolkit (:class:`DrillToolkit`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from notification_emergency.engine import Policy
from notification_emergency.errors import BadInput
from notification_emergency.inventory import Fleet, Target
from notification_emergency.results import ActionResult
from notification_emergency.watch import Hold

if TYPE_CHECKING:
    from notification_emergency.store import EventStore


class DrillToolkit(Protocol):
    """What a drill uses of the toolkit (the facade passes itself): the fleet, the record, and the actions a
    drill starts or undoes."""

    fleet: Fleet
    home: Path
    actor: str

    @property
    def store(self) -> EventStore: ...

    def auto_recover(
        self,
        limit: str | None = None,
        *,
        dry_run: bool = False,
        started_at: datetime | None = None,
        detected_at: datetime | None = None,
        policy: Policy | None = None,
    ) -> ActionResult: ...

    def deep_check(self, limit: str | None) -> ActionResult: ...

    def tend_fallbacks(
        self, limit: str | None = None, *, hold: Hold | None = None, policy: Policy | None = None
    ) -> dict[str, str]: ...

    def restore(self, *, limit: str | None = None) -> ActionResult: ...

    def deactivate_emergency(self, resolved_by: str, *, limit: str | None = None) -> ActionResult: ...

    def drain_backlog(self, *, limit: str | None = None) -> ActionResult: ...


SANDBOX_MARKER = ".notification-sandbox"
# Drills inject faults on purpose, one after another: the throttle and the circuit breaker, which protect a
# real fleet from flapping, would stop the engine from acting on the next drill. Everything else is as in
# production (the same plan, the same steps that never run automatically, the same escalation).
# The fallback's roll-forward waits for a 5 s healthy streak (60 s in production) and starts the WebSocket
# process alone every 2 s (30 s), so a drill of a prolonged outage takes a minute, not several.
DRILL_POLICY = Policy(throttle_s=0.0, breaker_max=1_000_000, rollforward_after_s=5.0, canary_every_s=2.0)
DRILL_TEND_EVERY = 1.0
DRILL_DEEP_EVERY = 3.0


def supervisorctl(root: Path, *args: str) -> str:
    """``supervisorctl`` of the sandbox host whose root is ``root`` (its own supervisord); what it printed."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(root / "etc" / "supervisord.conf"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout + proc.stderr


class SandboxHost:
    """The handles a fault needs on a local sandbox host."""

    def __init__(self, target: Target, variables: dict[str, Any] | None = None) -> None:
        if not target.sandbox or not target.root or not (Path(target.root) / SANDBOX_MARKER).is_file():
            raise BadInput(
                f"{target.host} is not a sandbox host (no notification_sandbox flag or no {SANDBOX_MARKER} in its "
                "root): drills break hosts on purpose and run only on sandbox hosts"
            )
        self.target = target
        self.root = Path(target.root)
        self.variables = variables or {}
        self.toolkit: DrillToolkit | None = None  # for a fault whose undo is a toolkit action

    def supervisorctl(self, *args: str) -> str:
        return supervisorctl(self.root, *args)

    def pid(self, program: str) -> int:
        answer = self.supervisorctl("pid", program).strip()
        if not answer.isdigit() or answer == "0":
            raise BadInput(f"{program} is not running on {self.target.host}: {answer}")
        return int(answer)

    @property
    def websocket_port(self) -> int:
        assert self.target.websocket_url is not None
        return int(self.target.websocket_url.rsplit(":", 1)[1])


Undo = Callable[[], None]
