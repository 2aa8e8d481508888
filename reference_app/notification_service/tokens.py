"""Signed Socket.IO tokens: the web process issues them, the websocket process verifies them."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

from .names import valid_user

SALT = "notification-ws"
MAX_AGE_SECONDS = 24 * 3600


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_ws_token(secret_key: str, user: str) -> str:
    return str(_serializer(secret_key).dumps({"user": user}))


def verify_ws_token(secret_key: str, token: object, max_age: int = MAX_AGE_SECONDS) -> str | None:
    """The user a token was issued for, or None when it is missing, forged, expired or malformed."""
    if not isinstance(token, str) or not token:
        return None
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadSignature:
        return None
    user = data.get("user") if isinstance(data, dict) else None
    return user if valid_user(user) else None
