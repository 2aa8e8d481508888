"""The web and WebSocket processes of a mode switch (``notification_mode``): the definitions applied, the WebSocket
service brought to the mode's state, the web process kept running, under supervisord or systemd
(``module_utils/notification_services.py``). Split from ``notification_mode`` (a file per responsibility, at most
700 lines). Standard library only, Python 3.8+.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.notification_checks import Context
from ansible.module_utils.notification_common import Deadline
from ansible.module_utils.notification_services import ServiceControlError, SystemdBackend, converge

if TYPE_CHECKING:  # the switch's inputs, for the annotations only (notification_mode imports this module)
    from ansible.module_utils.notification_mode import Switch


class Processes:
    """The web and WebSocket processes under supervisord or systemd (module_utils/notification_services.py)."""

    def __init__(self, switch: Switch, context: Context | None = None) -> None:
        self.switch = switch
        self.context = context or Context()

    @property
    def backend(self) -> Any:
        """A backend whose calls get ``service_timeout`` from now (each step its own time)."""
        opts = {"manager": self.switch.manager, "supervisor_config": self.switch.supervisor_config}
        return self.context.process_backend(opts, Deadline(self.switch.service_timeout))

    def running(self, name: str) -> bool:
        try:
            return self.backend.status(name).running
        except ServiceControlError:
            return False  # not defined yet: the program file of this run adds it

    def converge(self, websocket: bool, definitions_changed: bool) -> list[str]:
        """Apply changed definitions, put the WebSocket service in the wanted state, keep web running."""
        actions: list[str] = []
        backend = self.backend
        if isinstance(backend, SystemdBackend) and definitions_changed:
            backend.daemon_reload()
            actions.append("daemon-reload")
        for name, wanted, update in (
            (self.switch.websocket_service, websocket, True),
            (self.switch.web_service, True, False),
        ):
            try:
                _changed, services, manager_actions = converge(
                    backend,
                    [name],
                    "started" if wanted else "stopped",
                    wanted if isinstance(backend, SystemdBackend) else None,
                    check_mode=False,
                    wait_timeout=self.switch.service_timeout,
                    update=update and not isinstance(backend, SystemdBackend),
                )
            except ServiceControlError as exc:
                # Legacy mode with the WebSocket service kept (the engine's fallback to flash messages): users
                # do not depend on it, and whatever keeps it from starting is why the host falls back.
                if not (wanted and name == self.switch.websocket_service and self.switch.mode == "legacy"):
                    raise
                actions.append(f"{name}: could not start, not needed in legacy mode ({exc})")
                continue
            actions.extend(manager_actions)
            actions.extend(f"{name}: {action}" for action in services[name]["actions"])
        return actions
