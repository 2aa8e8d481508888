"""The dashboard in a real browser (Playwright for Python driving Debian's headless Chromium) against a real
sandbox host: an operator logs in, sees the host healthy, watches it fail live when its WebSocket service is
stopped (no reload), recovers it from the controls with a confirmation, and sees the incident and the
actions appear; a viewer's click on a control is refused by the server.

Set ``NOTIFICATION_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to save the screenshot of the README."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from notification_emergency.dashboard import Dashboard, DashboardServer
from tests.ansible.conftest import SandboxHost
from tests.conftest import ROOT
from tests.dashboard.conftest import PASSWORDS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Debian's Chromium as root, headless, with nothing that reaches beyond this machine (see FINDINGS.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: scripts/bootstrap.sh installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def server(
    make_dashboard: Callable[..., Dashboard],
    serve: Callable[[Dashboard], DashboardServer],
    dashboard_host: SandboxHost,
) -> DashboardServer:
    return serve(make_dashboard(dashboard_host.box.inventory, probe_interval=0.5))


def log_in(browser: Browser, server: DashboardServer, name: str) -> tuple[Page, list[str]]:
    """A new page logged in as ``name``, and the list that collects its script errors."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    expect(page).to_have_url(f"{server.url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")  # the event stream is connected
    page.set_default_timeout(30_000)
    return page, errors


def test_an_operator_sees_a_failure_live_and_recovers_it_from_the_controls(
    browser: Browser, server: DashboardServer, dashboard_host: SandboxHost
) -> None:
    page, errors = log_in(browser, server, "alice")
    card = page.locator("article.host-card[data-host='sandbox-01']")
    expect(card).to_have_attribute("data-status", "healthy")
    expect(card.locator(".mode")).to_contain_text("WebSocket")
    expect(card.locator(".emergency")).to_contain_text("off")
    component = page.locator(".component-host[data-host='sandbox-01'] tr[data-component='websocket']")
    expect(component).to_contain_text("healthy")
    expect(component.locator("td.num")).to_contain_text("ms")
    page.evaluate("window.notReloaded = true")

    started = time.monotonic()
    dashboard_host.supervisorctl("stop", "notification-websocket")
    expect(card).to_have_attribute("data-status", "failed", timeout=15_000)
    seen_after = time.monotonic() - started
    assert page.evaluate("window.notReloaded") is True, "the page changed without a reload"
    expect(card.locator(".badge").first).to_have_text("✗ FAILED")  # a word and an icon, not only a colour
    expect(card.locator(".problems")).to_contain_text("websocket")
    expect(component).to_contain_text("failed")
    expect(page.locator("#event-list li[data-kind='probe']").first).to_contain_text("-> failed")

    page.click("button[data-action='auto-recover']")
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("Check sandbox-01")
    expect(page.locator("#confirm-text")).to_contain_text("never a step that touches data")
    page.click("#confirm-ok")
    expect(page.locator("#control-message")).to_contain_text("Started: Auto-recover on sandbox-01")
    job = page.locator("article.job[data-action='auto-recover']").first
    expect(job.locator("pre.progress")).to_contain_text("health_check.yml")  # live progress of the run
    expect(job).to_have_attribute("data-state", "succeeded", timeout=180_000)
    expect(job).to_contain_text("recovered by restart websocket")
    expect(card).to_have_attribute("data-status", "healthy", timeout=15_000)
    incident = page.locator("#event-list li[data-kind='incident']").first
    expect(incident).to_contain_text("websocket_service_down on sandbox-01")
    expect(incident).to_contain_text("resolved in")
    expect(incident).to_have_attribute("data-ok", "true")
    expect(page.locator("#event-list li[data-kind='action']").first).to_contain_text("restart_websocket: recovered")
    expect(page.locator("[data-stat='incidents'] dd")).to_contain_text("1")
    expect(page.locator("[data-stat='recovery_rate'] dd")).to_contain_text("100 %")
    expect(page.locator("#chart rect.recover-point[data-incident]")).to_have_count(1)  # its recovery time
    expect(page.locator(".component-host[data-host='sandbox-01'] details summary")).to_contain_text(
        "websocket_service_down"
    )
    assert page.evaluate("window.notReloaded") is True
    assert dashboard_host.health()["status"] == "healthy"
    [recorded] = server.dashboard.store.incidents()
    assert recorded["detection_seconds"] is not None and recorded["detection_seconds"] > 0, "the first failed probe"
    expect(page.locator("[data-stat='mttd'] dd")).not_to_contain_text("-")
    trail = [(e["actor"], e["action"]) for e in server.dashboard.store.audit_trail()]
    assert ("alice", "dashboard auto-recover") in trail and ("alice", "dashboard auto-recover succeeded") in trail
    assert not errors, errors
    print(f"failure shown {seen_after:.1f} s after the stop")

    target = os.environ.get("NOTIFICATION_DASHBOARD_SCREENSHOT")
    if target:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / target), full_page=True)
    page.close()


def test_a_viewers_click_on_a_control_is_refused(
    browser: Browser, server: DashboardServer, dashboard_host: SandboxHost
) -> None:
    page, errors = log_in(browser, server, "bob")
    expect(page.locator("#viewer-notice")).to_contain_text("You are a viewer")
    expect(page.locator("article.host-card[data-host='sandbox-01']")).to_have_attribute("data-status", "healthy")
    page.click("button[data-action='health-check']")
    expect(page.locator("#control-message")).to_contain_text("Refused (403): bob is a viewer")
    expect(page.locator("dialog#confirm")).not_to_be_visible()
    page.fill("input[name=reason]", "viewer tries")
    page.click("button[data-action='activate-emergency']")
    expect(page.locator("#control-message")).to_contain_text("Refused (403)")
    assert server.dashboard.jobs.to_json() == [], "nothing started"
    assert not dashboard_host.health()["emergency"]["active"]
    refused = [e for e in server.dashboard.store.audit_trail() if e["actor"] == "bob" and "refused" in e["action"]]
    assert {e["action"] for e in refused} == {"dashboard health-check refused", "dashboard activate-emergency refused"}
    assert not errors, errors
    page.close()
