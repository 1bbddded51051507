"""Opaque ``nextToken`` cursors over DynamoDB's LastEvaluatedKey.

A token is ``base64url(json(key))``, followed by ``.`` and a truncated
HMAC-SHA256 when a secret is given (tamper-evident). Decoding a token that is
malformed, tampered with or of the wrong shape is a 400, never a 5xx.

The signing key comes from a SecureString parameter (``deployctl secret ensure``
generates it: ``secrets.token_urlsafe(32)``, 43 characters; its UTF-8 bytes are the
HMAC key). :func:`signing_key` refuses to run a deployed function (one that reads
its parameters, ``PARAMETER_PREFIX`` set) without it: a per-container random key
would make every container reject the others' cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable

from shared import log
from shared.http import ApiError

MAX_TOKEN_LEN = 2048
MAC_BYTES = 16
MIN_KEY_LEN = 16  # shorter values (e.g. an old "set-out-of-band" placeholder) count as unset


class SigningKeyUnavailable(RuntimeError):
    """A deployed function has no usable signing key: a 500, never a silent random key."""


_fallback_key: bytes | None = None


def signing_key(value: str, *, parameter: str, required: bool) -> bytes:
    """The HMAC key for cursors: ``value`` (the parameter's text) as UTF-8 bytes.

    Missing or shorter than MIN_KEY_LEN: with ``required`` (a deployed function)
    logs ``pagination.key_unavailable`` and raises SigningKeyUnavailable; without it
    (tests, no parameters at all) a per-process random key, with a warning.
    """
    global _fallback_key
    if len(value) >= MIN_KEY_LEN:
        return value.encode("utf-8")
    reason = "missing" if not value else f"shorter than {MIN_KEY_LEN} characters (a placeholder)"
    if required:
        log.error("pagination.key_unavailable", parameter=parameter, reason=reason,
                  fix="run deployctl secret ensure --env <env>")
        raise SigningKeyUnavailable(f"SSM parameter {parameter!r} is {reason}: cannot sign or check nextToken")
    if _fallback_key is None:
        import secrets

        log.warning("pagination.key_missing_using_process_key", parameter=parameter)
        _fallback_key = secrets.token_bytes(32)
    return _fallback_key


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
