"""The legacy mode's verification, made from outside the service (module_utils/notification_flash_probe.py).

The mode switch verifies a rollback by signing in as a user, sending a notification through the API and seeing it
flashed once on the next page, all over HTTP from the module (standard library), where it used to start the
service's own CLI (a Python start-up per host). These tests run it against a real sandbox host of their own (the
reference service's real pages and API): in legacy mode it passes; every way it can fail names the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ansible.module_utils.notification_flash_probe import FlashProbeError, flash_probe

from tests.ansible.sandbox import Sandbox, SandboxHost


@pytest.fixture(scope="module")
def legacy_host(sandbox_factory: Callable[..., Sandbox]) -> Iterator[SandboxHost]:
    """A sandbox host of this module's own, rolled back to legacy mode by the real playbook."""
    box = sandbox_factory("flash-probe")
    up = box.playbook("sandbox_up.yml")
    assert up.rc == 0, up.output[-3000:]
    try:
        rollback = box.playbook("rollback_to_legacy.yml", extra={"reason": "flash probe tests"})
        assert rollback.rc == 0, rollback.output[-3000:]
        # The rollback's own verification is this probe: the run's line says so, with the channel it saw.
        assert "verified by flash" in rollback.stdout
        yield SandboxHost(box, "sandbox-01")
    finally:
        box.playbook("sandbox_down.yml")


def config_of(host: SandboxHost) -> str:
    return str(host.root / "etc" / "config.yml")


def test_a_notification_is_seen_flashed_once(legacy_host: SandboxHost, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy in the environment (as on many managed hosts) is not used: the service is on this host.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    before = legacy_host.stats()
    answer = flash_probe(config_of(legacy_host), "probe-user", 15)
    assert answer["ok"] is True and answer["channel"] == "flash" and answer["user"] == "probe-user"
    assert isinstance(answer["notification_id"], int) and answer["latency_ms"] >= 0
    after = legacy_host.stats()
    # One notification more, and it was delivered: nothing is left pending for the probe's user.
    assert after["notifications"] == before["notifications"] + 1
    assert after["delivered"]["flash"] == before["delivered"]["flash"] + 1
    assert after["pending"] == before["pending"]


def test_a_user_name_is_sent_as_data(legacy_host: SandboxHost) -> None:
    # The user goes into a query string: encoded, so "&", "=" and "#" cannot add parameters; the service refuses
    # the name (its own rule) and the probe names the step.
    with pytest.raises(FlashProbeError, match=r"^sign in: GET http://127\.0\.0\.1:\d+/login\?user=a%26admin%3D1%23 "):
        flash_probe(config_of(legacy_host), "a&admin=1#", 10)


def test_an_unreachable_web_port_names_the_step(legacy_host: SandboxHost, tmp_path: Path) -> None:
    config = (legacy_host.root / "etc" / "config.yml").read_text()
    wrong_port = tmp_path / "config.yml"
    wrong_port.write_text(config.replace(f"port: {legacy_host.vars['notification_service_web_port']}", "port: 9", 1))
    with pytest.raises(FlashProbeError, match=r"^sign in: GET http://127\.0\.0\.1:9/login\?user=u failed: "):
        flash_probe(str(wrong_port), "u", 5)


def test_a_host_that_delivers_by_websocket_is_not_taken_for_flash(legacy_host: SandboxHost) -> None:
    # The host's web process reads config.yml on each request: with its mode set back to websocket (and the service
    # enabled), the API chooses the WebSocket channel and the probe must say so (the file is put back as it was).
    path = legacy_host.root / "etc" / "config.yml"
    original = path.read_bytes()
    websocket = original.replace(b"\nmode: legacy\n", b"\nmode: websocket\n", 1)
    path.write_bytes(websocket.replace(b"\n  enabled: false\n", b"\n  enabled: true\n", 1))
    try:
        with pytest.raises(FlashProbeError, match=r"^send a notification: channel is 'websocket', not flash$"):
            flash_probe(str(path), "u", 10)
    finally:
        path.write_bytes(original)


def test_a_stopped_web_process_names_the_step(legacy_host: SandboxHost) -> None:
    legacy_host.supervisorctl("stop", "notification-web")
    try:
        with pytest.raises(FlashProbeError, match=r"^sign in: GET http://127\.0\.0\.1:\d+/login\?user=u failed: "):
            flash_probe(config_of(legacy_host), "u", 5)
    finally:
        legacy_host.mend()


def test_a_wrong_api_token_names_the_step_and_the_answer(legacy_host: SandboxHost, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("api_token: not-the-token\nsecret_key: x\n")
    config = (legacy_host.root / "etc" / "config.yml").read_text()
    lines = [f"secrets_file: {secrets}" if line.startswith("secrets_file:") else line for line in config.splitlines()]
    other = tmp_path / "config.yml"
    other.write_text("\n".join(lines) + "\n")
    refused = r"^send a notification: POST http://\S+/api/notifications answered HTTP 403: invalid API token"
    with pytest.raises(FlashProbeError, match=refused):
        flash_probe(str(other), "u", 5)


def test_a_missing_token_or_config_is_named_with_the_fix(legacy_host: SandboxHost, tmp_path: Path) -> None:
    with pytest.raises(FlashProbeError, match=r"read the service's configuration: .*does not exist|not found|No such"):
        flash_probe(str(tmp_path / "absent.yml"), "u", 5)
    config = (legacy_host.root / "etc" / "config.yml").read_text()
    lines = [line for line in config.splitlines() if not line.startswith("secrets_file:")]
    other = tmp_path / "config.yml"
    other.write_text("\n".join(lines) + "\n")
    with pytest.raises(FlashProbeError, match=r"^send a notification: config.yml has no secrets_file"):
        flash_probe(str(other), "u", 5)
