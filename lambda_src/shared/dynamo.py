"""Tiny converters between plain dicts of strings and DynamoDB's typed items.

Our items only hold strings, so the low-level client plus these two helpers
replace boto3's resource layer (cheaper to import at cold start).
"""

from __future__ import annotations

from typing import Any


def to_item(data: dict[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"S": v} for k, v in data.items() if v is not None}


def from_item(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, typed in item.items():
        (kind, value), = typed.items()
        if kind == "S":
            out[key] = value
        elif kind == "N":
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        elif kind == "BOOL":
            out[key] = bool(value)
        elif kind == "NULL":
            out[key] = None
        else:
            out[key] = value
    return out


def timestamp() -> str:
    """Now, ISO-8601 UTC with microseconds (fixed width, so it sorts as text)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
