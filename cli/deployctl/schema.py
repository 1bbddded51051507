"""A small declarative validator for the environment configuration.

Each rule checks one value and, on failure, says what it expected; the
caller adds the file and the dotted key. Unknown keys are errors too, so a
typo in a config file never silently falls back to a default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Invalid(Exception):
    def __init__(self, key: str, expected: str, found: Any, *, missing: bool = False, found_text: str | None = None):
        super().__init__(key)
        self.key = key
        self.expected = expected
        self.found = found
        self.missing = missing
        self.found_text = found_text or describe(found)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        more = f" ({len(value)} characters)" if len(value) > 60 else ""
        return f"string {shown!r}{more}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class Rule:
    expected = "a value"

    def check(self, key: str, value: Any) -> Any:
        raise NotImplementedError


# C0/C1 control characters (and DEL): no AWS name, description, tag or header value
# deployctl renders needs one, and they turn log lines and backend.hcl into traps.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class Str(Rule):
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    expected_text: str | None = None
    # bounds in characters (AWS counts most names in characters); None = no bound
    min_len: int | None = None
    max_len: int | None = None
    # control characters are refused unless allowed (a name, description or tag never needs one)
    allow_control: bool = False

    @property
    def expected(self) -> str:
        if self.expected_text:
            text = self.expected_text
        elif self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.pattern:
            text = f"a string matching {self.pattern}"
        else:
            text = "a string"
        if self.max_len is not None:
            text += f" of at most {self.max_len} characters"
        if self.min_len:
            text += f" (at least {self.min_len})"
        return text

    def check(self, key, value):
        if not isinstance(value, str):
            raise Invalid(key, self.expected, value)
        if self.choices and value not in self.choices:
            raise Invalid(key, self.expected, value)
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise Invalid(key, self.expected, value)
        if (self.max_len is not None and len(value) > self.max_len) or (self.min_len and len(value) < self.min_len):
            raise Invalid(key, self.expected, value)
        if not self.allow_control and (m := CONTROL.search(value)):
            raise Invalid(key, f"{self.expected} without control characters", value,
                          found_text=f"control character {m.group()!r} at index {m.start()}")
        return value


@dataclass
class Int(Rule):
    min: int | None = None
    max: int | None = None

    @property
    def expected(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an integer from {self.min} to {self.max}"
        if self.min is not None:
            return f"an integer >= {self.min}"
        return "an integer"

    def check(self, key, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(key, self.expected, value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise Invalid(key, self.expected, value)
        return value


@dataclass
class Num(Rule):
    min: float | None = None
    max: float | None = None

    @property
    def expected(self) -> str:
        if self.min is not None and self.max is not None:
            return f"a number from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"a number >= {self.min:g}"
        return "a number"

    def check(self, key, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(key, self.expected, value)
        # TOML's nan/inf/-inf: Terraform (and JSON) have no such numbers ("Out of range float values" later)
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(key, f"{self.expected} (a finite number: nan and inf are not numbers Terraform accepts)",
                          value, found_text=f"non-finite number {value}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise Invalid(key, self.expected, value)
        return value


class Bool(Rule):
    expected = "true or false"

    def check(self, key, value):
        if not isinstance(value, bool):
            raise Invalid(key, self.expected, value)
        return value


@dataclass
class ListOf(Rule):
    item: Rule
    min_items: int = 0
    max_items: int | None = None

    @property
    def expected(self) -> str:
        most = f" (at most {self.max_items})" if self.max_items is not None else ""
        return f"a list of {self.item.expected}{most}"

    def check(self, key, value):
        if not isinstance(value, list) or len(value) < self.min_items \
                or (self.max_items is not None and len(value) > self.max_items):
            raise Invalid(key, self.expected, value)
        return [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]


@dataclass
class Table(Rule):
    """A table with known keys. ``required`` keys must be present after merging."""

    fields: dict[str, Rule]
    required: tuple[str, ...] = ()
    expected = "a table"

    def check(self, key, value):
        if not isinstance(value, dict):
            raise Invalid(key, self.expected, value)
        for name in sorted(value):
            if name not in self.fields:
                known = ", ".join(sorted(self.fields))
                raise Invalid(_join(key, name), f"one of the known keys ({known})", name, found_text="an unknown key")
        for name in self.required:
            if name not in value:
                raise Invalid(_join(key, name), self.fields[name].expected, None, missing=True)
        return {name: self.fields[name].check(_join(key, name), v) for name, v in value.items()}


@dataclass
class MapOf(Rule):
    """A table whose keys are names (functions, tables, ...) and values share one rule."""

    value: Rule
    key_pattern: str = r"[a-z][a-z0-9-]*"
    expected = "a table of named entries"

    def check(self, key, value):
        if not isinstance(value, dict):
            raise Invalid(key, self.expected, value)
        out = {}
        for name, v in value.items():
            if not re.fullmatch(self.key_pattern, name):
                raise Invalid(_join(key, name), f"a name matching {self.key_pattern}", name)
            out[name] = self.value.check(_join(key, name), v)
        return out


@dataclass
class Custom(Rule):
    fn: Callable[[str, Any], Any]
    expected: str = field(default="a valid value")

    def check(self, key, value):
        return self.fn(key, value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
