"""The dashboard's live view of a host: the watch's own probe, with the answers it read kept.

:func:`notification_emergency.watch.probe` decides whether a host is healthy (the same verdict the watch
acts on). Its requests go through a session whose response hook keeps each answer, so the dashboard also
shows what the host said (mode, emergency state, each component with its latency and error) without a
second request. No playbook, nothing through the managed service's Redis or WebSocket: three plain HTTP
requests from the control node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from notification_emergency import watch


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(response: requests.Response) -> dict[str, Any]:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def live_probe(target: watch.Target, timeout: float, session: requests.Session) -> dict[str, Any]:
    """One probe of ``target``: the watch's verdict plus the components the host reported."""
    answers: dict[str, requests.Response] = {}

    def keep(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        answers[response.url] = response

    session.hooks["response"] = [keep]
    result = watch.probe(target, timeout, session)
    web_health = answers.get(f"{target.web_url}/health")
    page = answers.get(f"{target.web_url}/")
    ws_health = answers.get(f"{target.websocket_url}/health") if target.websocket_url else None
    body = _json(web_health) if web_health is not None else {}
    components: list[dict[str, Any]] = []
    if web_health is None:
        problem = next((p for p in result.problems if p.startswith("web")), "no answer")
        components.append(
            {
                "name": "web",
                "status": "unreachable",
                "latency_ms": None,
                "evidence": f"GET {urlsplit(target.web_url).netloc}/health: {problem}",
            }
        )
    else:
        reported = body.get("components") or {}
        for name in ("web", "database", "redis", "websocket"):
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
            components.append(
                {"name": name, "status": status, "latency_ms": part.get("latency_ms"), "evidence": evidence}
            )
        if not reported:
            components.append(
                {
                    "name": "web",
                    "status": "failed",
                    "latency_ms": round(web_health.elapsed.total_seconds() * 1000, 1),
                    "evidence": f"GET /health answered {web_health.status_code} without components",
                }
            )
    if page is not None:
        components.append(
            {
                "name": "page",
                "status": "healthy" if page.status_code < 500 else "failed",
                "latency_ms": round(page.elapsed.total_seconds() * 1000, 1),
                "evidence": f"GET / answered {page.status_code}",
            }
        )
    if target.websocket_url and result.mode != "legacy":
        if ws_health is not None:
            process_body = _json(ws_health)
            components.append(
                {
                    "name": "websocket process",
                    "status": "healthy" if ws_health.status_code == 200 else "failed",
                    "latency_ms": round(ws_health.elapsed.total_seconds() * 1000, 1),
                    "evidence": f"GET /health answered {ws_health.status_code}"
                    + (f", {process_body.get('clients')} clients" if "clients" in process_body else ""),
                }
            )
        elif web_health is not None:
            problem = next((p for p in result.problems if p.startswith("websocket")), "no answer")
            components.append(
                {"name": "websocket process", "status": "failed", "latency_ms": None, "evidence": problem}
            )
    emergency = body.get("emergency") if isinstance(body.get("emergency"), dict) else None
    return {
        "host": target.host,
        "status": result.status,
        "ok": result.ok,
        "latency_ms": result.latency_ms,
        "mode": result.mode,
        "emergency": emergency,
        "problems": list(result.problems),
        "probed_at": _iso(result.at),
        "components": components,
        "web_url": target.web_url,
    }


__all__ = ["live_probe"]
