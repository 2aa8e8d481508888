"""The fleet view and the smaller controls in a real browser (Playwright driving Debian's headless Chromium).

At 50 hosts: the hosts are a cheaper real source than a 50-host sandbox (tests/dashboard/fleet_hosts.py):
lightweight real HTTP servers answering ``GET /health`` as the reference service does (healthy, degraded,
failed, on flash messages, in emergency mode), and two hosts that are down (nothing listens). The dashboard
probes them for real. The test checks the counts, the order (failing first), the filter, the search, the
host selection of the controls and the click through to a host; it prints the render time (performance.now()
around the render, in the page) without asserting on it: bench/bench_dashboard_fleet.py measures it.

On the shared sandbox host: take a backup, restore it by name, drain the backlog (each behind the
confirmation), cancel a running action, and see the recent actions again after a restart of the dashboard.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from notification_emergency.dashboard import Dashboard, DashboardServer
from tests.ansible.conftest import SandboxHost
from tests.dashboard.fleet_hosts import fleet, mixed
from tests.dashboard.test_dashboard_browser import browser, log_in  # noqa: F401  (the module's browser)


def test_the_fleet_view_at_50_hosts(
    browser: Browser,  # noqa: F811
    make_dashboard: Callable[..., Dashboard],
    serve: Callable[[Dashboard], DashboardServer],
    tmp_path: Path,
) -> None:
    with fleet(tmp_path, mixed(50)) as (inventory, hosts):
        dashboard = make_dashboard(inventory, probe_interval=0.5)
        failed = sorted(name for name, host in hosts.items() if host.profile == "failed")
        down = sorted(name for name, host in hosts.items() if host.profile == "down")
        for name in failed:  # open incidents (as a health check opens them): the emergency levels
            dashboard.store.open_incident(failure_type="database_unavailable", level=2, hosts=[name], summary="db")
        dashboard.store.open_incident(failure_type="web_service_down", level=1, hosts=down[:1], summary="web")
        server = serve(dashboard)
        page, errors = log_in(browser, server, "alice")
        count = lambda key: page.locator(f"[data-count='{key}'] .n")  # noqa: E731
        expect(count("health-failing")).to_have_text("5")  # 3 failed, 2 down
        expect(count("health-degraded")).to_have_text("4")
        expect(count("health-healthy")).to_have_text("41")
        expect(count("health-unknown")).to_have_text("0")
        expect(count("mode-websocket")).to_have_text("41")
        expect(count("mode-legacy")).to_have_text("7")
        expect(count("mode-unknown")).to_have_text("2")
        expect(count("emergency-level-2")).to_have_text("2")
        expect(count("emergency-off")).to_have_text("46")
        expect(count("emergency-unknown")).to_have_text("2")
        expect(count("emergency-incident-1")).to_have_text("1")
        expect(count("emergency-incident-2")).to_have_text("3")
        expect(count("emergency-incident-none")).to_have_text("46")
        expect(page.locator("[data-count='emergency-incident-1']")).to_have_text("1 level 1 critical")
        renders = page.evaluate("NE.dashboard.renders.slice(-5)")
        print(f"render of 50 hosts (ms, in the page): {[round(r['ms'], 1) for r in renders]}")

        # The hosts in trouble first, as cards with their failing components; the rest in the compact grid.
        cards = page.locator("#hosts article.host-card")
        expect(cards).to_have_count(9)
        shown = cards.evaluate_all("cards => cards.map(c => [c.dataset.status, c.dataset.host])")
        statuses, names = [status for status, _ in shown], [name for _, name in shown]
        assert set(statuses[:5]) == {"failed", "unreachable"} and statuses[5:] == ["degraded"] * 4, shown
        assert names[:5] == sorted(names[:5]) and names[5:] == sorted(names[5:]), "by name within each group"
        failing_components = page.locator(f"article.host-card[data-host='{failed[0]}'] .failing")
        expect(failing_components).to_contain_text("database (failed)")
        expect(page.locator("#fleet-grid li.tile")).to_have_count(41)
        expect(page.locator("#fleet-shown")).to_have_text("50 hosts")

        # The filter (a count is a filter too) and the search.
        page.click("[data-count='health-failing']")
        expect(cards).to_have_count(5)
        expect(page.locator("#fleet-grid li.tile")).to_have_count(0)
        expect(page.locator("#fleet-shown")).to_have_text("5 of 50 hosts match")
        page.click("[data-count='health-failing']")  # again: off
        page.select_option("#fleet-mode", "legacy")
        expect(cards).to_have_count(0)
        expect(page.locator("#fleet-grid li.tile")).to_have_count(7)
        page.click("#fleet-clear")
        page.fill("#fleet-search", "web-01")
        expect(page.locator("#fleet-shown")).to_have_text("10 of 50 hosts match")  # web-010 ... web-019
        page.fill("#fleet-search", "redis")  # a problem the probe found
        expect(cards).to_have_count(4)
        expect(page.locator("#fleet-grid li.tile")).to_have_count(0)

        # The host selection of the controls: what the view shows, the failing hosts, all, none, a search.
        summary = page.locator("#selection-summary")
        expect(summary).to_have_attribute("data-count", "50")
        page.click("#host-picker button[data-select='filtered']")
        expect(summary).to_have_attribute("data-count", "4")
        page.click("#host-picker button[data-select='none']")
        expect(summary).to_have_text("No host selected.")
        page.click("button[data-action='health-check']")
        expect(page.locator("#control-message")).to_have_text("Choose at least one host.")
        page.click("button[data-action='restore-backup']")  # restore-by-name acts on the one host chosen for it
        expect(page.locator("#control-message")).to_have_text("Choose the host to restore on.")
        page.click("#host-picker button[data-select='failing']")
        expect(summary).to_have_attribute("data-count", "5")
        page.click("button[data-action='health-check']")
        expect(page.locator("dialog#confirm")).to_be_visible()
        confirm = page.locator("#confirm-text").inner_text()
        failing = sorted(name for name, host in hosts.items() if host.profile in ("failed", "down"))
        assert f"Check every component of {', '.join(failing)} " in confirm, confirm
        page.click("#confirm-cancel")
        expect(page.locator("#control-message")).to_contain_text("Cancelled: nothing was started.")
        page.click("#host-picker button[data-select='all']")
        expect(summary).to_have_attribute("data-count", "50")
        page.fill("#host-pick-search", "web-00")
        expect(page.locator("#host-pick-list label")).to_have_count(9)
        page.locator("#host-pick-list input[value='web-004']").uncheck()
        expect(summary).to_have_attribute("data-count", "49")
        assert server.dashboard.jobs.to_json() == [], "nothing was started"

        # One click to a host's components and timeline; a host that fails moves up, live.
        page.click("#fleet-clear")
        page.click("#fleet-grid li.tile[data-host='web-001'] button")
        detail = page.locator("#host-detail")
        expect(detail).to_have_attribute("data-host", "web-001")
        expect(detail.locator(".component-host[data-host='web-001'] tr[data-component='database']")).to_contain_text(
            "healthy"
        )
        expect(detail.locator("#host-timeline[data-host='web-001']")).to_be_visible()
        hosts["web-001"].set("failed")
        expect(page.locator("article.host-card[data-host='web-001']")).to_have_attribute("data-status", "failed")
        expect(count("health-failing")).to_have_text("6")
        expect(detail.locator("tr[data-component='database']")).to_contain_text("failed")
        change = detail.locator("#host-timeline li[data-kind='probe']").first
        expect(change).to_contain_text("web-001 healthy -> failed")
        assert re.fullmatch(r"\d+\.\d", page.locator("#status").get_attribute("data-render-ms") or ""), "timed"
        assert not errors, errors
        page.close()


def test_backup_restore_by_name_drain_cancel_and_the_actions_after_a_restart(
    browser: Browser,  # noqa: F811
    make_dashboard: Callable[..., Dashboard],
    serve: Callable[[Dashboard], DashboardServer],
    dashboard_host: SandboxHost,
) -> None:
    dashboard = make_dashboard(dashboard_host.box.inventory, probe_interval=0.5)
    server = serve(dashboard)
    page, errors = log_in(browser, server, "alice")
    expect(page.locator("article.host-card[data-host='sandbox-01']")).to_have_attribute("data-status", "healthy")

    def confirm(action: str, *words: str) -> None:
        page.click(f"button[data-action='{action}']")
        expect(page.locator("dialog#confirm")).to_be_visible()
        for word in words:
            expect(page.locator("#confirm-text")).to_contain_text(word)
        page.click("#confirm-ok")

    def finished(action: str, state: str = "succeeded") -> None:
        job = page.locator(f"article.job[data-action='{action}']").first
        expect(job).to_have_attribute("data-state", state, timeout=180_000)

    # The backup playbook reuses the host's newest backup when nothing changed since (the shared host has
    # backups of earlier tests): a resolved emergency state of this test's own makes this one new.
    emergency = dashboard_host.root / "state" / "emergency.json"
    state = json.loads(emergency.read_text()) if emergency.exists() else {"active": False, "level": None}
    assert not state.get("active"), state
    emergency.write_text(json.dumps({**state, "resolved_by": f"browser-test {uuid.uuid4().hex}"}))
    # The host chosen for restore-by-name before the backup: its list is read again when the backup ends.
    page.select_option("select[name=backup-host]", "sandbox-01")
    expect(page.locator("select[name=backup] option", has_text="-browser-test")).to_have_count(0)
    page.fill("input[name=label]", "browser-test")
    confirm("backup", "labelled browser-test on sandbox-01")
    finished("backup")

    option = page.locator("select[name=backup] option", has_text="-browser-test")
    expect(option).to_have_count(1, timeout=30_000)  # read from the store after the live update: slow under load
    name = option.get_attribute("value") or ""
    assert re.fullmatch(r"\d{8}T\d{6}Z-browser-test", name), name
    page.select_option("select[name=backup]", name)
    confirm("restore-backup", f"Restore backup {name} on sandbox-01")
    finished("restore-backup")
    expect(page.locator("article.job[data-action='restore-backup']").first).to_contain_text(name)

    confirm("drain-backlog", "pending WebSocket backlog of sandbox-01")
    finished("drain-backlog")

    confirm("health-check", "Check every component of sandbox-01")
    page.click("article.job[data-action='health-check'] button[data-cancel]")
    finished("health-check", "canceled")
    expect(page.locator("article.job[data-action='health-check']").first).to_contain_text("cancel requested by alice")
    runs = {run["action"]: run["status"] for run in dashboard.store.runs()}
    assert runs["health-check"] == "canceled" and runs["backup"] == "successful", runs
    assert not errors, errors
    page.close()

    server.shutdown()
    dashboard.stop()
    again = serve(make_dashboard(dashboard_host.box.inventory, probe_interval=0.5))
    page, errors = log_in(browser, again, "bob")
    jobs = page.locator("article.job")
    expect(jobs).to_have_count(4)
    states = jobs.evaluate_all("jobs => jobs.map(j => [j.dataset.action, j.dataset.state])")
    assert states == [
        ["health-check", "canceled"],
        ["drain-backlog", "succeeded"],
        ["restore-backup", "succeeded"],
        ["backup", "succeeded"],
    ], states
    expect(jobs.locator("button[data-cancel]")).to_have_count(0)
    assert dashboard_host.health()["status"] == "healthy"
    assert not errors, errors
    page.close()
