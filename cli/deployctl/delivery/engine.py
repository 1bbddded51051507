"""The engine a rollout drives: what moves traffic. The extension point for CodeDeploy.

The rollout loop (:mod:`deployctl.delivery.rollout`) decides *when* to move and *whether* to
go back; a :class:`TrafficEngine` only does the moving. Today's engine,
:class:`LambdaAliasEngine`, moves the ``live`` alias's routing weights from this process
(client-side; works on any emulator). A CodeDeploy deployment group could implement the same
three methods (``shift`` = create a deployment with a custom config, ``restore`` = stop it with
auto-rollback) and the loop would only watch and record.
"""

from __future__ import annotations

from typing import Any, Protocol

from deployctl import aws, naming
from deployctl.artifacts.aliases import AliasState, parse_history, parse_note, render_history
from deployctl.artifacts.lambdas import get_alias, revision_guard
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, Refused


class TrafficEngine(Protocol):
    name: str

    def current(self) -> AliasState:
        """Where traffic goes now."""

    def shift(self, weight: int) -> AliasState:
        """Send ``weight`` percent to the new version (100: all of it, no routing weights)."""

    def restore(self) -> AliasState:
        """All traffic back to the old version, no routing weights."""


class LambdaAliasEngine:
    """Moves ``live`` of one function between ``old`` and ``new`` with guarded ``UpdateAlias`` calls.

    The alias history (see :mod:`deployctl.artifacts.aliases`) gets ``old`` on top while the
    rollout runs and after it completes (so ``rollback`` undoes it), and loses it again when
    the rollout is undone; ``note`` (why an alarm was ignored) is kept in the Description.
    """

    name = "lambda-alias"

    def __init__(self, cfg: EnvConfig, function: str, old: str, new: str, note: str | None = None,
                 lam: Any | None = None):
        self.physical = naming.function_name(cfg, function)
        self.old, self.new, self.note = str(old), str(new), note
        self.lam = lam or aws.client("lambda", cfg.region)
        self.calls = 0

    def _alias(self) -> dict:
        self.calls += 1
        with aws.errors("read the live alias", self.physical):
            alias = get_alias(self.lam, self.physical, naming.LIVE_ALIAS)
        if alias is None:
            raise OperationFailed(f"'{self.physical}' has no live alias", hint="apply the env first")
        return alias

    def current(self) -> AliasState:
        return AliasState.of(self._alias())

    def _update(self, after: AliasState, *, keep_old_in_history: bool) -> AliasState:
        alias = self._alias()
        state = AliasState.of(alias)
        if state.version not in (self.old, self.new) or set(state.weights) - {self.new, self.old}:
            raise Refused(f"live of '{self.physical}' was moved outside the rollout (now {state.describe()})",
                          hint="check who moved it; deployctl rollout abort returns it to the old version")
        history = parse_history(alias.get("Description"))
        base = history[1:] if history and history[0] == self.old else history
        new_history = [self.old, *base] if keep_old_in_history else base
        note = self.note or parse_note(alias.get("Description"))
        self.calls += 1
        with aws.errors("move the live alias", self.physical):
            self.lam.update_alias(FunctionName=self.physical, Name=naming.LIVE_ALIAS, FunctionVersion=after.version,
                                  RoutingConfig={"AdditionalVersionWeights": after.weights},
                                  Description=render_history(new_history, note), **revision_guard(alias))
        return after

    def shift(self, weight: int) -> AliasState:
        after = AliasState(self.new, {}) if weight >= 100 else AliasState(self.old, {self.new: round(weight / 100, 4)})
        return self._update(after, keep_old_in_history=True)

    def restore(self) -> AliasState:
        return self._update(AliasState(self.old, {}), keep_old_in_history=False)
