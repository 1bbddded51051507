"""Unfinished rollouts, for ``status`` and ``prune``.

The records are the rollout engine's (:mod:`deployctl.delivery.rollout`: one object per function in
the env's state bucket while a rollout is unfinished, deleted when it reaches 100% or is rolled back).
``status`` lists them per function; ``prune`` keeps every version one refers to (its ``from`` and
``to``), so neither side of a rollout that a dead runner left behind can be deleted under it.
"""

from __future__ import annotations

from deployctl.config import EnvConfig


def unfinished(cfg: EnvConfig) -> list[dict]:
    """Every unfinished rollout of ``cfg``'s env: the record's fields plus ``versions`` ([from, to])."""
    from deployctl.delivery.rollout import unfinished_rollouts

    out = []
    for record in unfinished_rollouts(cfg):
        versions = [str(record[k]) for k in ("from", "to") if record.get(k) not in (None, "")]
        out.append({**record, "versions": versions})
    return out


def versions_in_use(cfg: EnvConfig, function: str) -> set[str]:
    """The versions of ``function`` that an unfinished rollout refers to."""
    return {str(v) for r in unfinished(cfg) if r.get("function") == function for v in r.get("versions", [])}
