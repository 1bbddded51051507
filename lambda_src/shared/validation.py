"""Validation of JSON request bodies against small field specs.

Every problem is collected and reported at once as a 400 with a ``details``
list of ``{"field", "message"}``; values are never echoed back (they may be
personal data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.http import ApiError

# JSON Schema ``pattern``s, character for character the ones in api/openapi.json (API Gateway
# checks the same strings before the handler runs). Searched, not full-matched, as JSON Schema
# does; plain ASCII classes, so every regex engine on the way reads them alike.
EMAIL = (r"^[^@ \t\r\n]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
PHONE = r"^\+?[0-9][0-9 ().-]{1,30}$"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@lru_cache(maxsize=32)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@dataclass(frozen=True)
class Text:
    """A string field with JSON Schema semantics: ``minLength``/``maxLength`` in characters
    (code points, nothing trimmed), ``pattern`` searched in the value as given."""

    required: bool = False
    min_len: int = 0
    max_len: int = 1000
    pattern: str = ""
    pattern_text: str = ""

    def check(self, value: Any) -> tuple[str | None, str | None]:
        """(value, error message)."""
        if not isinstance(value, str):
            return None, f"must be a string, got {_json_type(value)}"
        if len(value) < self.min_len:
            return None, "must not be empty" if self.min_len == 1 else f"must have at least {self.min_len} characters"
        if len(value) > self.max_len:
            return None, f"must have at most {self.max_len} characters"
        if self.pattern and not _regex(self.pattern).search(value):
            return None, f"must be {self.pattern_text or 'in the expected format'}"
        return value, None


def check_object(body: dict[str, Any], spec: dict[str, Text], *, require_one: bool = False) -> dict[str, str]:
    """Validate ``body`` against ``spec``; unknown fields are an error too."""
    details = []
    clean: dict[str, str] = {}
    for name in sorted(k for k in body if k not in spec):
        details.append({"field": name[:100], "message": "is not an allowed field"})
    for name, rule in spec.items():
        if name not in body:
            if rule.required:
                details.append({"field": name, "message": "is required"})
            continue
        value, problem = rule.check(body[name])
        if problem:
            details.append({"field": name, "message": problem})
        else:
            clean[name] = value
    if require_one and not clean and not details:
        details.append({"field": "", "message": f"give at least one of: {', '.join(spec)}"})
    if details:
        raise ApiError(400, "validation failed", details=details)
    return clean


def is_uuid(value: str) -> bool:
    return bool(UUID.fullmatch(value))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
