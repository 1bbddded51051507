"""Unfinished rollouts: the extension point ``status`` and ``prune`` read.

Today deployctl records no rollouts (a canary is only the ``live`` alias' routing weight, which
``status`` and ``prune`` read from the alias itself), so :func:`unfinished` returns nothing. Issue 17
adds rollout records; it fills this function in, and both commands pick them up: ``status`` lists
them per function, ``prune`` keeps every version one refers to.

A rollout is ``{"function": NAME, "versions": ["7", "8"], "state": "...", "started_at": ISO}``.
"""

from __future__ import annotations

from deployctl.config import EnvConfig


def unfinished(cfg: EnvConfig) -> list[dict]:
    """Every rollout of ``cfg`` that has not finished (none are recorded yet)."""
    del cfg
    return []


def versions_in_use(cfg: EnvConfig, function: str) -> set[str]:
    """The versions of ``function`` that an unfinished rollout refers to."""
    return {str(v) for r in unfinished(cfg) if r.get("function") == function for v in r.get("versions", [])}
