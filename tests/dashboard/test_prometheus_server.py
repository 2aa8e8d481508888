"""A real Prometheus (Debian's prometheus package) scrapes the real dashboard every second, with a dashboard
user's Basic credentials, across a real recovery of the shared sandbox host: its WebSocket program stopped,
auto-recover run through the toolkit's API. Prometheus's HTTP API then shows the counters' increase() across
the recovery, no counter reset, and the runs-running gauge back at 0; every scrape on the way (healthy,
failing, recovered) passes `promtool check metrics`; the shipped alerting rules load, evaluate, and the
failing host's alerts go pending."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from notification_emergency.api import EmergencyToolkit
from notification_emergency.dashboard import Dashboard, DashboardServer
from tests.ansible.conftest import SandboxHost
from tests.conftest import free_port_block
from tests.dashboard.conftest import PASSWORDS
from tests.dashboard.test_metrics import PREFIX, promtool_check_metrics, samples
from tests.dashboard.test_prometheus_rules import ALERTS, RULES

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "notification-emergency"


class Prometheus:
    """A Prometheus server of the test's own: its config, its TSDB in a temporary directory, a loopback port."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.process, self.log = url, process, log

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert answer.status_code == 200, (expr, answer.text)
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        """The one value of an instant query (a query that gives none or several is a test failure)."""
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def wait(self, expr: str, what: str, timeout: float = 60) -> None:
        """Until the query gives a result (for example ``up == 1``)."""
        deadline = time.monotonic() + timeout
        while not self.query(expr):
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{what}: no result for {expr} within {timeout} s"
            time.sleep(0.5)


@pytest.fixture
def dashboard_server(
    make_dashboard: Callable[..., Dashboard],
    serve: Callable[[Dashboard], DashboardServer],
    dashboard_host: SandboxHost,
) -> DashboardServer:
    return serve(make_dashboard(dashboard_host.box.inventory, probe_interval=0.5))


@pytest.fixture
def prometheus(tmp_path: Path, dashboard_server: DashboardServer) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port, scraping the dashboard every second as the viewer bob, with the
    shipped alerting rules loaded."""
    assert Path(PROMETHEUS).exists(), (
        "prometheus is missing: scripts/bootstrap.sh installs it (apt-get install prometheus)"
    )
    home = tmp_path / "prometheus"
    home.mkdir()
    password = home / "dashboard-password"
    password.write_text(PASSWORDS["bob"] + "\n")
    password.chmod(0o600)
    target = dashboard_server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "basic_auth": {"username": "bob", "password_file": str(password)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port_block(1, start=32500)
    log = home / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
            try:
                if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready within 30 s: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        server.wait(f'up{{job="{JOB}"}} == 1', "the dashboard scraped with Basic credentials")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def scrape(server: DashboardServer) -> dict[tuple[str, str], float]:
    """/metrics as Prometheus gets it, linted by promtool."""
    answer = requests.get(f"{server.url}/metrics", auth=("bob", PASSWORDS["bob"]), timeout=10)
    assert answer.status_code == 200, answer.text
    promtool_check_metrics(answer.text)
    return samples(answer.text)


def test_prometheus_sees_a_real_recovery_with_counters_that_never_reset(
    prometheus: Prometheus, dashboard_server: DashboardServer, dashboard_host: SandboxHost, state: Path
) -> None:
    host = dashboard_host.name
    healthy = f'{PREFIX}host_healthy{{host="{host}"}}'
    prometheus.wait(f"{healthy} == 1", "the healthy host, as Prometheus stored it")
    assert scrape(dashboard_server)[(f"{PREFIX}host_healthy", f'{{host="{host}"}}')] == 1
    started = time.monotonic()

    dashboard_host.supervisorctl("stop", "notification-websocket")
    prometheus.wait(f"{healthy} == 0", "the failing host, as Prometheus stored it")
    failing = scrape(dashboard_server)
    assert failing[(f"{PREFIX}host_healthy", f'{{host="{host}"}}')] == 0
    for alert in ("NotificationHostFailing", "NotificationWebSocketDown"):  # the shipped rules on real series
        prometheus.wait(f'ALERTS{{alertname="{alert}",alertstate="pending",host="{host}"}}', f"{alert} pending")

    toolkit = EmergencyToolkit(
        inventory=dashboard_host.box.inventory, store=state / "events.db", home=state, actor="pytest"
    )
    result = toolkit.auto_recover(host)
    assert result.ok and result.hosts[host]["status"] == "recovered", result.message
    recovered = scrape(dashboard_server)
    assert recovered[(f"{PREFIX}runs", '{status="running"}')] == 0
    time.sleep(3)  # a few more scrapes after the recovery
    prometheus.wait(f"{healthy} == 1", "the recovered host, as Prometheus stored it")

    window = f"[{int(time.monotonic() - started) + 30}s]"
    # Counters across the recovery: one incident resolved, the health check and the restart finished.
    resolved = prometheus.value(f"increase({PREFIX}incidents_resolved_total{window})")
    assert 1 <= resolved < 2, resolved
    assert prometheus.value(f"increase({PREFIX}incidents_total{window})") >= 1
    successful = f'{PREFIX}runs_finished_total{{status="successful"}}'
    assert prometheus.value(f"increase({successful}{window})") >= 2
    assert prometheus.value(f'{PREFIX}recovery_actions_total{{action="restart_websocket",outcome="recovered"}}') == 1
    # No counter reset anywhere (what a typed counter that goes down would show), over every counter family.
    counters = sorted({name for name, _labels in recovered if name.endswith("_total")})
    assert len(counters) >= 8, counters
    assert {
        name: prometheus.value(f'sum(resets({name}{{job="{JOB}"}}{window}))') for name in counters
    } == dict.fromkeys(counters, 0.0)
    # The gauge of runs running went up during the recovery and is back at 0.
    running = f'{PREFIX}runs{{status="running"}}'
    assert prometheus.value(f"max_over_time({running}{window})") >= 1
    assert prometheus.value(running) == 0
    assert prometheus.value(f"min_over_time({healthy}{window})") == 0 and prometheus.value(healthy) == 1

    rules = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert set(loaded) == ALERTS
    assert all(rule["health"] == "ok" for rule in loaded.values()), loaded
