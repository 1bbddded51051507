"""Opaque ``nextToken`` cursors over DynamoDB's LastEvaluatedKey.

A token is ``base64url(json(key))``, followed by ``.`` and a truncated
HMAC-SHA256 when a secret is given (tamper-evident). Decoding a token that is
malformed, tampered with or of the wrong shape is a 400, never a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable

from shared.http import ApiError

MAX_TOKEN_LEN = 2048
MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, scope: str, payload: str) -> str:
    return _b64(hmac.new(secret, f"{scope}|{payload}".encode(), hashlib.sha256).digest()[:MAC_BYTES])


def encode(key: dict[str, dict], *, scope: str, secret: bytes | None = None) -> str:
    """Token for a DynamoDB LastEvaluatedKey of string attributes."""
    plain = {name: value["S"] for name, value in key.items()}
    payload = _b64(json.dumps(plain, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_mac(secret, scope, payload)}" if secret else payload


def decode(token: str, *, scope: str, fields: tuple[str, ...], secret: bytes | None = None,
           check: Callable[[dict[str, str]], bool] | None = None) -> dict[str, dict]:
    """The ExclusiveStartKey a token stands for, or ApiError(400)."""
    invalid = ApiError(400, "nextToken is invalid or has expired")
    if not token or len(token) > MAX_TOKEN_LEN or not token.isascii():
        raise invalid
    payload, dot, mac = token.partition(".")
    if secret:
        if not dot or not hmac.compare_digest(mac, _mac(secret, scope, payload)):
            raise invalid
    elif dot:
        raise invalid
    try:
        plain = json.loads(_unb64(payload).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if (not isinstance(plain, dict) or set(plain) != set(fields)
            or not all(isinstance(v, str) and 0 < len(v) <= 512 for v in plain.values())):
        raise invalid
    if check is not None and not check(plain):
        raise invalid
    return {name: {"S": value} for name, value in plain.items()}
