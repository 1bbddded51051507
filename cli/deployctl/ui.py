"""Output for people and for machines, without click.

Human-readable progress always goes to stderr. The command's result goes to
stdout: as JSON with ``--json``, as text otherwise. Core modules take a
:class:`UI` and call ``info``/``warn``/``step``; only the CLI layer creates it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from deployctl.errors import Refused

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "bold": "1", "dim": "2"}


def envelope(command: str | None, env: str | None, *, ok: bool, result: Any = None, error: dict | None = None) -> dict:
    """The one JSON shape of every command's output with ``--json``.

    ``{"command": "plan", "env": "dev", "ok": true, "result": {...}}`` on success;
    ``{"command": ..., "env": ..., "ok": false, "error": {"error": kind, "message": ...,
    "where": ..., "hint": ..., "exit_code": N}}`` on failure (``result`` is kept when
    the command produced one before failing, e.g. the findings of a failed policy gate).
    """
    doc: dict[str, Any] = {"command": command, "env": env, "ok": ok}
    if result is not None or ok:
        doc["result"] = result
    if error is not None:
        doc["error"] = error
    return doc


def print_json(doc: Any, stream: TextIO) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, default=str), file=stream, flush=True)


class UI:
    def __init__(self, *, json_mode: bool = False, assume_yes: bool = False, out: TextIO | None = None,
                 err: TextIO | None = None, command: str | None = None, env: str | None = None):
        self.json_mode = json_mode
        self.assume_yes = assume_yes
        self.command = command
        self.env = env
        self._out = out
        self._err = err

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    # -- styling -----------------------------------------------------------
    def color_enabled(self, stream: TextIO) -> bool:
        if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return False
        if os.environ.get("FORCE_COLOR"):
            return True
        return hasattr(stream, "isatty") and stream.isatty()

    def style(self, text: str, *styles: str, stream: TextIO | None = None) -> str:
        if not styles or not self.color_enabled(stream or self.out):
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.err.isatty() and not os.environ.get("CI")

    @property
    def show_progress(self) -> bool:
        """Progress bars only on a terminal, never in --json or CI mode."""
        return not self.json_mode and self.interactive

    # -- messages ------------------------------------------------------------
    def info(self, message: str) -> None:
        print(message, file=self.err)

    def step(self, message: str) -> None:
        print(self.style(f"==> {message}", "bold", stream=self.err), file=self.err)

    def warn(self, message: str) -> None:
        print(self.style(f"warning: {message}", "yellow", stream=self.err), file=self.err)

    def error(self, message: str) -> None:
        print(self.style(f"error: {message}", "red", stream=self.err), file=self.err)

    # -- results ---------------------------------------------------------------
    def result(self, data: Any, human: Callable[[], str] | str | None = None) -> None:
        """Print the command's result: the JSON envelope on stdout with --json, else ``human``."""
        if self.json_mode:
            print_json(envelope(self.command, self.env, ok=True, result=data), self.out)
            return
        text = human() if callable(human) else human
        if text:
            print(text, file=self.out)

    def failed(self, data: Any, error: dict, human: Callable[[], str] | str | None = None) -> None:
        """A command that has a result to show although it failed (a failed policy gate): ok = false."""
        if self.json_mode:
            print_json(envelope(self.command, self.env, ok=False, result=data, error=error), self.out)
            return
        text = human() if callable(human) else human
        if text:
            print(text, file=self.out)

    def confirm_typed(self, prompt: str, expected: str, *, what: str) -> None:
        """Ask the user to type ``expected`` (an env name) exactly; refuse otherwise (or without a terminal)."""
        if self.assume_yes:
            return
        if not sys.stdin.isatty():
            raise Refused(f"{what} needs confirmation", hint="re-run with --yes in non-interactive use")
        print(f"{prompt} ", end="", file=self.err, flush=True)
        if not _typed_answer_matches(sys.stdin.readline(), expected):
            raise Refused(f"{what} was not confirmed: the answer was not '{expected}'", hint="nothing was changed")

    def confirm(self, prompt: str, *, what: str) -> None:
        """Ask a yes/no question; refuse unless answered yes (or --yes was given)."""
        if self.assume_yes:
            return
        if not sys.stdin.isatty():
            raise Refused(f"{what} needs confirmation", hint="re-run with --yes in non-interactive use")
        print(f"{prompt} [y/N] ", end="", file=self.err, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in {"y", "yes"}:
            raise Refused(f"{what} was not confirmed", hint="nothing was changed")


def _typed_answer_matches(answer: str, expected: str) -> bool:
    return answer.strip() == expected


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain text table (no dependency)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(str(cell)))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    return "\n".join(out)
