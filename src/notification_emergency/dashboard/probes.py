"""The dashboard's live view of a host: the watch's own probe, with the answers it read kept.

:func:`notification_emergency.probes.probe` decides whether a host is healthy (the same verdict the watch
acts on). Its requests go through a session whose response hook keeps each answer, so the dashboard also
shows what the host said (mode, emergency state, each component with its latency and error) without a
second request. No playbook, nothing through the managed service's Redis or WebSocket: three plain HTTP
requests from the control node. A host whose answer the probe cannot read counts as failed; it never stops
the probes of the other hosts.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import requests

from notification_emergency.inventory import Target
from notification_emergency.probes import Probe, probe, read_web_health
from notification_emergency.timeutil import iso, utc_now

REPORTED = ("web", "database", "redis", "websocket")  # what the web process's /health reports, in display order


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        return read_web_health(response).body
    except ValueError:
        return {}


def _ms(response: requests.Response) -> float:
    return round(response.elapsed.total_seconds() * 1000, 1)


def _problem(result: Probe, prefix: str) -> str:
    return next((p for p in result.problems if p.startswith(prefix)), "no answer")


def _reported(web_health: requests.Response, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The components the web process's /health reported, each with a line of evidence."""
    reported = body.get("components")
    reported = reported if isinstance(reported, dict) else {}
    components = []
    for name in REPORTED:
        part = reported.get(name)
        if not isinstance(part, dict):
            continue
        status = str(part.get("status") or "unknown")
        evidence = part.get("error") or ("disabled in legacy mode" if status == "disabled" else "")
        if not evidence and name == "web":
            evidence = f"GET /health answered {web_health.status_code}"
        elif not evidence and name == "database" and isinstance(body.get("pending"), dict):
            evidence = "pending deliveries: " + (
                ", ".join(f"{k} {v}" for k, v in sorted(body["pending"].items())) or "none"
            )
        elif not evidence:
            evidence = f"{status}, as the web process's /health reports"
        components.append({"name": name, "status": status, "latency_ms": part.get("latency_ms"), "evidence": evidence})
    if not reported:
        components.append(
            {
                "name": "web",
                "status": "failed",
                "latency_ms": _ms(web_health),
                "evidence": f"GET /health answered {web_health.status_code} without components",
            }
        )
    return components


def _websocket_process(result: Probe, ws_health: requests.Response | None, web_answered: bool) -> list[dict[str, Any]]:
    """The WebSocket process's own /health (nothing when the web process did not answer either)."""
    if ws_health is not None:
        process_body = _json(ws_health)
        return [
            {
                "name": "websocket process",
                "status": "healthy" if ws_health.status_code == 200 else "failed",
                "latency_ms": _ms(ws_health),
                "evidence": f"GET /health answered {ws_health.status_code}"
                + (f", {process_body.get('clients')} clients" if "clients" in process_body else ""),
            }
        ]
    if web_answered:
        problem = _problem(result, "websocket")
        return [{"name": "websocket process", "status": "failed", "latency_ms": None, "evidence": problem}]
    return []


def live_probe(target: Target, timeout: float, session: requests.Session) -> dict[str, Any]:
    """One probe of ``target``: the watch's verdict plus the components the host reported."""
    answers: dict[str, requests.Response] = {}

    def keep(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        answers[response.url] = response

    session.hooks["response"] = [keep]
    started, at = time.monotonic(), utc_now()
    try:
        result = probe(target, timeout, session)
    except Exception as exc:  # an answer the watch's probe does not expect (a JSON list): this host failed
        latency = round((time.monotonic() - started) * 1000, 1)
        result = Probe(target.host, at, False, "failed", latency, None, [f"web /health: {type(exc).__name__}"])
    web_health = answers.get(f"{target.web_url}/health")
    page = answers.get(f"{target.web_url}/")
    ws_health = answers.get(f"{target.websocket_url}/health") if target.websocket_url else None
    body = _json(web_health) if web_health is not None else {}
    components: list[dict[str, Any]]
    if web_health is None:
        components = [
            {
                "name": "web",
                "status": "unreachable",
                "latency_ms": None,
                "evidence": f"GET {urlsplit(target.web_url).netloc}/health: {_problem(result, 'web')}",
            }
        ]
    else:
        components = _reported(web_health, body)
    if page is not None:
        components.append(
            {
                "name": "page",
                "status": "healthy" if page.status_code < 500 else "failed",
                "latency_ms": _ms(page),
                "evidence": f"GET / answered {page.status_code}",
            }
        )
    if target.websocket_url and result.mode != "legacy":
        components += _websocket_process(result, ws_health, web_health is not None)
    emergency = body.get("emergency") if isinstance(body.get("emergency"), dict) else None
    return {
        "host": target.host,
        "status": result.status,
        "ok": result.ok,
        "latency_ms": result.latency_ms,
        "mode": result.mode,
        "emergency": emergency,
        "problems": list(result.problems),
        "probed_at": iso(result.at),
        "components": components,
        "web_url": target.web_url,
    }


__all__ = ["live_probe"]
