"""ansible-rulebook event source: a generic JSON webhook for the notification service's rulebook.

The project's own version of ``ansible.eda.webhook`` (Galaxy is not reachable from every control node),
loaded with ``ansible-rulebook -S rulebooks/sources``. Arguments:

- ``host`` (default ``127.0.0.1``) and ``port`` (required): where to listen;
- ``token`` (optional): the bearer token clients must send (``Authorization: Bearer <token>``); a request
  without it gets 401 and puts nothing on the queue.

A POST to any path with a JSON object as body becomes one event, shaped like ``ansible.eda.webhook``'s::

    {"payload": {...the body...}, "meta": {"endpoint": "<path>", "headers": {...}}}

The ``Authorization`` header is left out of ``meta.headers``, so the token never reaches the rulebook's
events or the playbooks' extra vars. A body that is not a JSON object gets 400; GET answers 200 (for
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
HIDDEN_HEADERS = frozenset({"authorization", "cookie"})


def _authorized(request: web.Request) -> bool:
    token = request.app[TOKEN]
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _receive(request: web.Request) -> web.Response:
    if not _authorized(request):
        LOG.warning("webhook source: rejected a request without the bearer token")
        return web.json_response({"error": "a valid bearer token is required"}, status=401)
    try:
        payload = json.loads(await request.read())
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
        LOG.warning("webhook source: bad request: %s", exc)
        return web.json_response({"error": f"malformed JSON body: {exc}"}, status=400)
    headers = {name: value for name, value in request.headers.items() if name.lower() not in HIDDEN_HEADERS}
    await request.app[QUEUE].put(
        {"payload": payload, "meta": {"endpoint": request.match_info.get("endpoint", ""), "headers": headers}}
    )
    return web.json_response({"received": 1})


async def _ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Serve until cancelled (ansible-rulebook cancels the source when it shuts down)."""
    if "port" not in args:
        raise ValueError("notification_webhook: the port argument is required")
    app = web.Application()
    app[QUEUE] = queue
    app[TOKEN] = str(args.get("token") or "")
    app.router.add_post("/{endpoint:.*}", _receive)
    app.router.add_get("/{endpoint:.*}", _ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, str(args.get("host") or "127.0.0.1"), int(args["port"]))
    await site.start()
    LOG.info("webhook source listening on %s:%s", args.get("host") or "127.0.0.1", args["port"])
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # Try it without ansible-rulebook: print the events of what is posted to port 5000.
    class _PrintQueue(asyncio.Queue[Any]):
        async def put(self, item: Any) -> None:
            print(json.dumps(item), flush=True)

    asyncio.run(main(_PrintQueue(), {"port": 5000}))
