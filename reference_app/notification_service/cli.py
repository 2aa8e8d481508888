"""``notification-service``: run the web or websocket process, or one of the JSON commands.

Exit status: 0 success, 1 failure at run time (database unreachable, probe failed), 2 bad configuration
or input (one line ``notification-service: error: ...`` on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from . import __version__
from .config import Config, ConfigError, load_config

PROG = "notification-service"
CONFIG_ENV = "NOTIFICATION_SERVICE_CONFIG"
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def _error(message: str, status: int, json_output: bool) -> NoReturn:
    if json_output:
        _print_json({"ok": False, "error": message})
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(status)


def _database(config: Config) -> Any:
    from .db import Database

    db = Database(config.database_url, pool_size=1, max_overflow=0)
    db.ensure_schema()
    return db


def cmd_web(config: Config, args: argparse.Namespace) -> int:
    from .server import run_web

    run_web(config)
    return 0


def cmd_websocket(config: Config, args: argparse.Namespace) -> int:
    if not config.websocket.enabled:
        _error(
            f"{config.path.name}: websocket.enabled is false, so the websocket process is disabled "
            f"(mode {config.mode}); set websocket.enabled: true in {config.path} to run it",
            2,
            json_output=False,
        )
    from .server import run_websocket

    run_websocket(config)
    return 0


def cmd_check_config(config: Config, args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    _print_json(
        {
            "ok": True,
            "config": str(config.path),
            "mode": config.mode,
            "websocket_enabled": config.websocket.enabled,
            "channel": config.delivery_channel,
            "web": f"{config.web.host}:{config.web.port}",
            "websocket": f"{config.websocket.host}:{config.websocket.port}" if config.websocket.enabled else None,
            "database": make_url(config.database_url).get_backend_name(),
            "templates_dir": str(config.templates_dir),
            "emergency_file": str(config.emergency_file),
            "secrets_file": str(config.secrets_file),
        }
    )
    return 0


def cmd_carry_pending(config: Config, args: argparse.Namespace) -> int:
    import redis

    from . import redisq

    carried = _database(config).carry_pending()
    try:
        redisq.clear_pending(redisq.client(config.redis_url))
    except redis.RedisError as exc:
        logging.getLogger(PROG).warning(
            "carried %d deliveries in the database, but could not clear %s: %s",
            carried,
            redisq.PENDING_KEY,
            redisq.describe(exc),
        )
    _print_json({"carried": carried})
    return 0


def cmd_notify(config: Config, args: argparse.Namespace) -> int:
    """Store a notification for the flash channel straight in the database: no web process, no Redis.

    The toolkit's last way to reach users when the web process is down: each recipient sees it as a flash
    message on the next page, in either mode (a page claims pending ``flash`` deliveries in both)."""
    from .names import PRIORITIES, USER_RULE, valid_user
    from .web import MESSAGE_MAX, TITLE_MAX

    if args.user != "*" and not valid_user(args.user):
        _error(f"--user must be '*' (everyone) or a user name ({USER_RULE}); got {args.user!r}", 2, json_output=True)
    title = args.title.strip()
    if not title or len(title) > TITLE_MAX:
        _error(f"--title must be a non-empty string of at most {TITLE_MAX} characters", 2, json_output=True)
    if len(args.message) > MESSAGE_MAX:
        _error(f"--message must be at most {MESSAGE_MAX} characters", 2, json_output=True)
    if args.priority not in PRIORITIES:
        _error(f"--priority must be one of {', '.join(PRIORITIES)}; got {args.priority!r}", 2, json_output=True)
    created = _database(config).create_notification(
        None if args.user == "*" else args.user, title, args.message, args.priority, "flash"
    )
    _print_json({"id": created.id, "recipients": len(created.recipients), "channel": created.channel})
    return 0


def cmd_stats(config: Config, args: argparse.Namespace) -> int:
    _print_json(_database(config).stats())
    return 0


def cmd_probe(config: Config, args: argparse.Namespace) -> int:
    from .names import USER_RULE, valid_user
    from .probe import run_probe

    if not valid_user(args.user):
        _error(f"--user {args.user!r} is not a user name ({USER_RULE})", 2, json_output=True)
    if not 0 < args.timeout <= 300:
        _error(f"--timeout {args.timeout:g} is not between 0 and 300 seconds", 2, json_output=True)
    result = run_probe(config, args.user, args.timeout)
    _print_json(result)
    return 0 if result.get("ok") else 1


COMMANDS: dict[str, tuple[Callable[[Config, argparse.Namespace], int], str]] = {
    "web": (cmd_web, "run the web process (gunicorn, gthread workers)"),
    "websocket": (cmd_websocket, "run the websocket process (gunicorn, 1 worker, 100 threads)"),
    "check-config": (cmd_check_config, "validate config.yml and the secrets file; print JSON"),
    "carry-pending": (cmd_carry_pending, "move pending websocket deliveries to the flash store"),
    "notify": (cmd_notify, "store a notification for the flash channel (next page) without the web process"),
    "stats": (cmd_stats, "print delivery counts as JSON"),
    "probe": (cmd_probe, "send a notification and see it arrive (Socket.IO client, or flash message in legacy mode)"),
}
# Commands that never open the database: their config.yml check leaves database_url alone (no SQLAlchemy).
NO_DATABASE_COMMANDS = frozenset({"probe"})
JSON_COMMANDS = frozenset({"check-config", "carry-pending", "notify", "stats", "probe"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Reference notification service.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    default_config = os.environ.get(CONFIG_ENV)
    for name, (_handler, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument(
            "--config",
            default=default_config,
            required=default_config is None,
            metavar="PATH",
            help=f"path of config.yml (default: ${CONFIG_ENV})",
        )
        if name == "probe":
            sub.add_argument("--user", required=True, help="the user the probe connects and notifies as")
            sub.add_argument(
                "--timeout", type=float, default=10.0, metavar="S", help="give up after S seconds (default 10)"
            )
        if name == "notify":
            sub.add_argument("--user", required=True, help="a user name, or '*' for every known user")
            sub.add_argument("--title", required=True, help="the notification's title")
            sub.add_argument("--message", default="", help="its text (default: none)")
            sub.add_argument("--priority", default="normal", help="low, normal, high or critical (default normal)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command: str = args.command
    json_output = command in JSON_COMMANDS
    level = logging.INFO if command in ("web", "websocket") else logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level, format=LOG_FORMAT)
    try:
        config = load_config(args.config, check_database=command not in NO_DATABASE_COMMANDS)
    except ConfigError as exc:
        _error(str(exc), 2, json_output)
    handler = COMMANDS[command][0]
    try:
        status = handler(config, args)
    except KeyboardInterrupt:
        status = 130
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        from .db import describe_error

        if not isinstance(exc, SQLAlchemyError):
            raise
        _error(f"database unavailable: {describe_error(exc)}", 1, json_output)
    raise SystemExit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
