"""What a request gives, checked before anything runs: the JSON body, the query parameters (BadInput, 400,
naming what is wrong)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from flask import request

from notification_emergency.errors import BadInput
from notification_emergency.store import parse_since

MAX_JSON_DEPTH = 32


def nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (strings skipped), without parsing it: one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def json_body() -> Any:
    """The request's JSON body (None without one, or without ``Content-Type: application/json``); BadInput
    for a body that is not UTF-8, not JSON, or nested deeper than ``MAX_JSON_DEPTH``."""
    if not request.is_json:
        return None
    raw = request.get_data(cache=True)  # (over MAX_CONTENT_LENGTH: 413 before this)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"the request body is not UTF-8 (byte {exc.start}): send JSON in UTF-8") from None
    if not text.strip():
        return None
    depth = nesting(text)
    if depth > MAX_JSON_DEPTH:
        raise BadInput(f"the request body is JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"the request body is not valid JSON: {str(exc)[:200]}") from None


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name``: a whole number from ``low`` to ``high`` (``default`` when absent)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\s*[0-9]{1,9}\s*", raw) or not low <= int(raw) <= high:
        raise BadInput(f"query parameter {name} must be a whole number from {low} to {high}, not {raw[:80]!r}")
    return int(raw)


def since_arg() -> datetime | None:
    """Query parameter ``since`` (``24h``, ``7d``, an ISO 8601 time) as a time; None without one."""
    raw = request.args.get("since")
    if raw is not None and len(raw) > 64:
        raise BadInput("query parameter since is too long")
    try:
        return parse_since(raw, name="query parameter since")
    except (OverflowError, ValueError):  # a duration beyond the calendar (99999999d), a time out of range
        raise BadInput(f"query parameter since {raw!r} reaches before the year 1; give a shorter duration") from None


__all__ = ["MAX_JSON_DEPTH", "int_arg", "json_body", "nesting", "since_arg"]
