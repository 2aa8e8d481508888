"""The dashboard's parts on their own, no sandbox host and no browser: the live probe against a real HTTP
server that answers oddly, the controls (Jobs) driven through the narrow things they receive (a toolkit
factory, the store, callables; never the Dashboard), the blueprints' URL map, and the package's imports
(one way, no cycle)."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from notification_emergency.api import ActionResult, EmergencyToolkit
from notification_emergency.dashboard import create_app
from notification_emergency.dashboard.jobs import Conflict, Jobs
from notification_emergency.dashboard.probes import live_probe
from notification_emergency.errors import BadInput
from notification_emergency.inventory import Target
from notification_emergency.store import EventStore
from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "notification_emergency" / "dashboard"


# -- the live probe --------------------------------------------------------------------------------------


class _Odd(BaseHTTPRequestHandler):
    """Answers every GET with ``body`` as application/json."""

    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def odd_host() -> Iterator[Target]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Target("odd-01", f"http://127.0.0.1:{server.server_port}", None)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        ([], "failed"),  # not an object
        (["healthy"], "failed"),
        ({"status": "failed", "components": ["web", "redis"]}, "failed"),  # components not an object
        ({"status": "healthy", "components": ["web"]}, "healthy"),  # (the watch's verdict: the status says so)
        ({"status": "healthy", "components": "web"}, "healthy"),
    ],
)
def test_an_unreadable_health_answer_never_stops_the_probe(odd_host: Target, body: Any, verdict: str) -> None:
    """Before: a JSON list from /health (or components that were a list) raised in the probe, which stopped
    the probe round of every host; now the host's row says what it answered."""
    _Odd.body = json.dumps(body).encode()
    with requests.Session() as session:
        row = live_probe(odd_host, 2.0, session)
    assert row["host"] == "odd-01" and row["probed_at"].endswith("Z")
    assert row["status"] == verdict and row["ok"] is (verdict == "healthy"), row
    web = next(c for c in row["components"] if c["name"] == "web")
    assert web["status"] == "failed" and "without components" in web["evidence"], row["components"]


def test_a_healthy_answer_lists_its_components(odd_host: Target) -> None:
    _Odd.body = json.dumps(
        {
            "status": "healthy",
            "mode": "websocket",
            "components": {"web": {"status": "healthy", "latency_ms": 1.5}, "redis": {"status": "healthy"}},
            "emergency": {"active": False},
        }
    ).encode()
    with requests.Session() as session:
        row = live_probe(odd_host, 2.0, session)
    assert row["ok"] is True and row["mode"] == "websocket" and row["emergency"] == {"active": False}
    assert [c["name"] for c in row["components"]] == ["web", "redis", "page"]
    assert row["components"][0]["latency_ms"] == 1.5


# -- the controls, without a Dashboard -------------------------------------------------------------------


class _Calls:
    """What Jobs told the dashboard: ``changed(record)`` and ``record_health(...)`` calls."""

    def __init__(self) -> None:
        self.changed: list[bool] = []
        self.health: list[tuple[ActionResult, str, datetime]] = []
        self.hosts = ["web-01", "web-02"]


def _jobs(tmp_path: Path, calls: _Calls, gate: threading.Event | None = None) -> tuple[Jobs, EventStore]:
    store = EventStore(tmp_path / "events.db")

    def toolkit(**options: Any) -> EmergencyToolkit:
        if gate is not None:
            gate.wait(30)  # an action that takes its time before its toolkit is ready
        return EmergencyToolkit(inventory=tmp_path / "gone.yml", store=store, home=tmp_path, **options)

    jobs = Jobs(
        toolkit=toolkit,
        store=store,
        hosts=lambda: calls.hosts,
        changed=calls.changed.append,
        failing_since=lambda hosts: {},
        record_health=lambda result, source, at: calls.health.append((result, source, at)),
    )
    return jobs, store


def test_a_job_that_fails_is_reported_audited_and_announced(tmp_path: Path) -> None:
    calls = _Calls()
    jobs, store = _jobs(tmp_path, calls)
    spec, hosts, inputs = jobs.prepare("health-check", None, None)
    assert hosts == ["web-01", "web-02"] and inputs == {}
    job = jobs.start(spec, hosts, inputs, "alice")
    jobs.stop()
    assert job.state == "failed" and job.exit_code == 2 and "gone.yml does not exist" in job.message
    assert job.finished_at is not None and job.to_json()["finished_at"].endswith("Z")
    assert calls.changed == [True, True], "announced at the start and at the end, with the record"
    assert calls.health == [], "no health rows from a check that did not run"
    trail = store.audit_trail()
    assert [(a["actor"], a["action"], a["target"]) for a in trail] == [
        ("alice", "dashboard health-check failed", "web-01, web-02")
    ]


def test_jobs_check_hosts_against_the_current_host_list(tmp_path: Path) -> None:
    calls = _Calls()
    jobs, _store = _jobs(tmp_path, calls)
    with pytest.raises(BadInput, match="hosts web-03 are not shown by this dashboard; its hosts are: web-01, web-02"):
        jobs.prepare("health-check", ["web-03"], None)
    calls.hosts = ["web-01", "web-02", "web-03"]  # the inventory was read again
    assert jobs.prepare("health-check", ["web-03", "web-03"], None)[1] == ["web-03"]
    with pytest.raises(BadInput, match="reason is required"):
        jobs.prepare("activate-emergency", None, {"level": 1})


def test_a_second_action_on_a_busy_host_is_refused(tmp_path: Path) -> None:
    calls = _Calls()
    gate = threading.Event()
    jobs, _store = _jobs(tmp_path, calls, gate)
    spec, hosts, inputs = jobs.prepare("health-check", ["web-01"], None)
    first = jobs.start(spec, hosts, inputs, "alice")
    try:
        assert jobs.conflict(["web-02", "web-01"]) is first and jobs.conflict(["web-02"]) is None
        with pytest.raises(Conflict, match=r"Run health check started by alice .* is running on web-01"):
            jobs.start(spec, ["web-01", "web-02"], inputs, "bob")
        other = jobs.start(spec, ["web-02"], inputs, "bob")  # another host: allowed
        assert {j["id"] for j in jobs.to_json()} == {first.id, other.id}
    finally:
        gate.set()
        jobs.stop()
    assert first.state == other.state == "failed" and jobs.running() == []


# -- the application's wiring ----------------------------------------------------------------------------

URLS = {
    ("/login", "GET"),
    ("/login", "POST"),
    ("/logout", "POST"),
    ("/", "GET"),
    ("/healthz", "GET"),
    ("/api/state", "GET"),
    ("/api/status", "GET"),
    ("/api/components", "GET"),
    ("/api/events", "GET"),
    ("/api/stats", "GET"),
    ("/api/audit", "GET"),
    ("/api/actions", "GET"),
    ("/api/actions", "POST"),
    ("/api/actions/<job_id>", "GET"),
    ("/api/actions/<job_id>/cancel", "POST"),
    ("/api/hosts/<path:host>/timeline", "GET"),
    ("/api/hosts/<path:host>/backups", "GET"),
    ("/api/stream", "GET"),
    ("/metrics", "GET"),
    ("/static/<path:filename>", "GET"),
}


class _NoDashboard:
    """create_app reads only ``home`` (for the session key) until a request comes."""

    def __init__(self, home: Path) -> None:
        self.home = home


def test_the_blueprints_serve_the_same_urls(tmp_path: Path) -> None:
    app = create_app(_NoDashboard(tmp_path))  # type: ignore[arg-type]
    served = {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods or ()}
    assert {(url, method) for url, method in served if method not in ("HEAD", "OPTIONS")} == URLS
    assert set(app.blueprints) == {"auth", "pages", "api", "actions", "live"}
    second = create_app(_NoDashboard(tmp_path))  # type: ignore[arg-type]
    assert (
        second.extensions["notification_emergency_dashboard_streams"]
        is not (app.extensions["notification_emergency_dashboard_streams"])
    ), "each application has its own limit of live streams"


# -- imports ---------------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """What ``path`` imports (every module and ``module.name``, at any level, under TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _modules() -> dict[str, set[str]]:
    names = {
        "notification_emergency.dashboard" + ("." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)): p
        for p in PACKAGE.rglob("*.py")
    }
    names = {name.removesuffix(".__init__"): path for name, path in names.items()}
    return {name: {d for d in _imports(path) if d in names and d != name} for name, path in names.items()}


def test_the_dashboard_imports_one_way() -> None:
    graph = _modules()
    seen: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for dependency in sorted(graph[module]):
            assert seen.get(dependency) != 1, f"import cycle: {' -> '.join([*path, module, dependency])}"
            if dependency not in seen:
                visit(dependency, [*path, module])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [])
    package = "notification_emergency.dashboard"
    for module, imported in graph.items():
        if module != package:
            assert package not in imported, f"{module} imports the package itself (its __init__ imports the app)"
    assert not {d for d in graph[f"{package}.jobs"] | graph[f"{package}.probes"] if d.startswith(package)}, (
        "the controls and the probe know nothing of the dashboard"
    )
    for path in PACKAGE.rglob("*.py"):
        upward = {d for d in _imports(path) if d.split(".")[:2] == ["notification_emergency", "cli"]}
        assert not upward, f"{path.name} imports the CLI, a front end like the dashboard: {upward}"
