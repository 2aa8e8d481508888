"""ansible-rulebook event source: receive Alertmanager webhook notifications, one event per alert.

The project's own version of ``ansible.eda.alertmanager`` (Galaxy is not reachable from every control node),
loaded with ``ansible-rulebook -S rulebooks/sources``. Arguments:

- ``host`` (default ``127.0.0.1``) and ``port`` (required): where to listen;
- ``token`` (optional): the bearer token Alertmanager must send (``http_config.authorization.credentials``);
  a request without it gets 401 and puts nothing on the queue.

Alertmanager posts ``{"status": ..., "alerts": [...], ...}`` to any path. Each alert becomes one event::

    {"alert": {...the alert...}, "labels": {...}, "status": "firing" | "resolved",
     "meta": {"endpoint": "<path>", "receiver": "...", "group_key": "..."}}

``status`` is the alert's own, not the group's. No ``meta.hosts`` is set: the rulebook passes the host to
the playbooks as a variable (a host limit would leave ``auto_recover.yml``, which runs on the control
node, with no host). A body that is not JSON, or has no ``alerts`` list, gets 400; GET answers 200 (for
readiness probes).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import web

LOG = logging.getLogger(__name__)
QUEUE: web.AppKey[asyncio.Queue[Any]] = web.AppKey("queue", asyncio.Queue)
TOKEN: web.AppKey[str] = web.AppKey("token", str)


def _authorized(request: web.Request) -> bool:
    token = request.app[TOKEN]
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def alert_events(body: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """One event per alert of an Alertmanager webhook body (raises ValueError when it is not one)."""
    alerts = body.get("alerts")
    if not isinstance(alerts, list) or not all(isinstance(alert, dict) for alert in alerts):
        raise ValueError("an Alertmanager notification needs an 'alerts' list of objects")
    meta = {"endpoint": endpoint, "receiver": body.get("receiver"), "group_key": body.get("groupKey")}
    return [
        {
            "alert": alert,
            "labels": alert.get("labels") or {},
            "status": alert.get("status") or body.get("status") or "firing",
            "meta": meta,
        }
        for alert in alerts
    ]


async def _receive(request: web.Request) -> web.Response:
    if not _authorized(request):
        LOG.warning("alertmanager source: rejected a request without the bearer token")
        return web.json_response({"error": "a valid bearer token is required"}, status=401)
    try:
        body = json.loads(await request.read())
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        events = alert_events(body, request.match_info.get("endpoint", ""))
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
        LOG.warning("alertmanager source: bad request: %s", exc)
        return web.json_response({"error": f"malformed Alertmanager notification: {exc}"}, status=400)
    for event in events:
        await request.app[QUEUE].put(event)
    return web.json_response({"received": len(events)})


async def _ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Serve until cancelled (ansible-rulebook cancels the source when it shuts down)."""
    if "port" not in args:
        raise ValueError("notification_alertmanager: the port argument is required")
    app = web.Application()
    app[QUEUE] = queue
    app[TOKEN] = str(args.get("token") or "")
    app.router.add_post("/{endpoint:.*}", _receive)
    app.router.add_get("/{endpoint:.*}", _ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, str(args.get("host") or "127.0.0.1"), int(args["port"]))
    await site.start()
    LOG.info("alertmanager source listening on %s:%s", args.get("host") or "127.0.0.1", args["port"])
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # Try it without ansible-rulebook: print the events of what is posted to port 5050.
    class _PrintQueue(asyncio.Queue[Any]):
        async def put(self, item: Any) -> None:
            print(json.dumps(item), flush=True)

    asyncio.run(main(_PrintQueue(), {"port": 5050}))
