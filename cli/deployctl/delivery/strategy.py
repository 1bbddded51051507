"""Rollout strategies: SAM's DeploymentPreference types and custom steps from ``[rollout]``.

A strategy is a list of :class:`Step`: the share of traffic (percent) the new version gets,
held for ``bake_s`` seconds while the signals are watched. The last step is always 100.

SAM's names (the CodeDeploy predefined Lambda configurations):
``Canary10Percent5Minutes`` = 10 % for 5 minutes, then 100 %;
``Linear10PercentEvery1Minute`` = 10 %, 20 %, ... 90 %, each for 1 minute, then 100 %;
``AllAtOnce`` = 100 % at once. Custom strategies: ``[rollout.strategies.NAME] steps = [...]``.

Resolution, most specific first: ``--strategy`` > ``[rollout.functions.NAME] strategy`` >
``[rollout] strategy`` > ``AllAtOnce``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, UsageError

DEFAULT_STRATEGY = "AllAtOnce"
DEFAULT_POLL_S = 15
DEFAULT_ERROR_RATE_PERCENT = 1.0

SAM_STRATEGIES = (
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
)
_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")


@dataclass(frozen=True)
class Step:
    weight: int  # percent of traffic on the new version
    bake_s: int  # seconds held (and watched) before the next step

    def to_dict(self) -> dict:
        return {"weight": self.weight, "bake_s": self.bake_s}


def sam_steps(name: str) -> list[Step] | None:
    """The steps of one of SAM's strategy names (None for another name)."""
    if name not in SAM_STRATEGIES:
        return None
    if name == "AllAtOnce":
        return [Step(100, 0)]
    if m := _CANARY.fullmatch(name):
        return [Step(int(m.group(1)), int(m.group(2)) * 60), Step(100, 0)]
    m = _LINEAR.fullmatch(name)
    assert m is not None
    pct, minutes = int(m.group(1)), int(m.group(2))
    return [Step(w, minutes * 60) for w in range(pct, 100, pct)] + [Step(100, 0)]


def settings_for(cfg: EnvConfig, function: str) -> dict:
    """``[rollout]`` merged with ``[rollout.functions.<function>]`` (the function's keys win)."""
    rollout = cfg.get("rollout", {}) or {}
    merged = {k: v for k, v in rollout.items() if k not in ("strategies", "functions")}
    merged.update((rollout.get("functions") or {}).get(function, {}))
    return merged


def resolve(cfg: EnvConfig, function: str, name: str | None = None) -> tuple[str, list[Step]]:
    """``(name, steps)`` of the strategy for ``function``: ``name`` (``--strategy``) or the config's."""
    where_key = None
    if name is None:
        local = ((cfg.get("rollout.functions", {}) or {}).get(function) or {}).get("strategy")
        where_key = f"rollout.functions.{function}.strategy" if local else "rollout.strategy"
        name = local or cfg.get("rollout.strategy") or DEFAULT_STRATEGY
    custom = (cfg.get("rollout.strategies", {}) or {}).get(name)
    if custom is not None:
        return name, [Step(s["weight"], s.get("bake_s", 0)) for s in custom["steps"]]
    steps = sam_steps(name)
    if steps is not None:
        return name, steps
    known = ", ".join([*SAM_STRATEGIES, *sorted(cfg.get("rollout.strategies", {}) or {})])
    if where_key is None:
        raise UsageError(f"unknown strategy {name!r}", where="--strategy", hint=f"one of: {known}")
    raise ConfigError(f"key '{where_key}': expected a strategy name, found {name!r}", where=cfg.where(where_key),
                      hint=f"one of: {known} (custom ones under [rollout.strategies])")


def poll_s(cfg: EnvConfig) -> int:
    return int(cfg.get("rollout.poll_s", DEFAULT_POLL_S))


def error_rate_percent(cfg: EnvConfig, function: str) -> float:
    return float(settings_for(cfg, function).get("error_rate_percent", DEFAULT_ERROR_RATE_PERCENT))
