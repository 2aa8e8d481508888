"""The playbook tests' helpers. The shared sandbox host fixtures (sandbox_box, sandbox_host) live in
tests/conftest.py, so that every suite of a session (playbooks, dashboard, procedures) shares one sandbox."""

from __future__ import annotations

from tests.ansible.sandbox import SandboxHost

__all__ = ["SandboxHost"]
