"""promote and rollback: move the ``live`` alias, keeping an undo history.

History lives in the ``live`` alias itself, in its Description, as compact JSON
``{"deployctl_previous":["3","2"]}``: the versions ``live`` pointed at before
each promote, newest first (at most :data:`HISTORY_LIMIT`, within Lambda's
256-character limit). ``promote`` pushes the previous primary version;
``rollback`` pops it and points ``live`` back at it with no canary routing.

Every change is one ``UpdateAlias`` call guarded by the alias' RevisionId, so a
failure leaves the alias as it was; its answer is the alias after the change (it is not read
again). ``promote`` reads the function's aliases in one ``ListAliases`` (a missing function is
said as such) and checks that the target version exists, unless its caller has just published it
(``publish-lambda --deploy --promote``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from deployctl import aws, naming
from deployctl.artifacts.lambdas import check_functions, get_function, list_aliases, revision_guard
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, Refused, UsageError
from deployctl.ui import UI

HISTORY_KEY = "deployctl_previous"
NOTE_KEY = "deployctl_note"  # why the last move went ahead despite a firing alarm (rollout --ignore-alarm)
HISTORY_LIMIT = 20
DESCRIPTION_MAX = 256


@dataclass
class AliasState:
    version: str | None
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, alias: dict | None) -> AliasState:
        if alias is None:
            return cls(None)
        weights = ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")) or {}
        return cls(alias.get("FunctionVersion"), {str(k): float(v) for k, v in weights.items()})

    def to_dict(self) -> dict:
        return {"version": self.version, "weights": dict(self.weights)}

    def describe(self) -> str:
        if self.version is None:
            return "(no alias)"
        text = f"version {self.version}"
        for v, w in sorted(self.weights.items()):
            text += f" (+{round(w * 100, 2):g}% to version {v})"
        return text


def parse_history(description: str | None) -> list[str]:
    try:
        data = json.loads(description or "")
    except ValueError:
        return []
    previous = data.get(HISTORY_KEY) if isinstance(data, dict) else None
    if not isinstance(previous, list):
        return []
    return [str(v) for v in previous if str(v).isdigit()]


def parse_note(description: str | None) -> str | None:
    try:
        data = json.loads(description or "")
    except ValueError:
        return None
    note = data.get(NOTE_KEY) if isinstance(data, dict) else None
    return note if isinstance(note, str) else None


def render_history(history: list[str], note: str | None = None) -> str:
    """The alias Description: the history, and ``note`` (shortened to fit) when given."""
    history = history[:HISTORY_LIMIT]
    while True:
        doc: dict = {HISTORY_KEY: history}
        if note:
            doc[NOTE_KEY] = note
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) <= DESCRIPTION_MAX:
            return text
        if note and len(note) > 40:
            note = note[: max(40, len(note) - (len(text) - DESCRIPTION_MAX) - 1)] + "~"
        elif history:
            history = history[:-1]
        else:
            return json.dumps({HISTORY_KEY: []}, separators=(",", ":"))


def needs_confirmation(cfg: EnvConfig) -> bool:
    return cfg.protected  # one rule: EnvConfig.protected


def _result(cfg: EnvConfig, function: str, physical: str, before: AliasState, after: AliasState,
            changed: bool, history: list[str], action: str) -> dict:
    return {
        "env": cfg.name,
        "function": function,
        "function_name": physical,
        "alias": naming.LIVE_ALIAS,
        "action": action,
        "changed": changed,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "history": history,
    }


def _apply(lam: Any, physical: str, live: dict | None, after: AliasState, history: list[str]) -> AliasState:
    """Move live; returns the alias as the update answered it."""
    routing = {"AdditionalVersionWeights": after.weights}
    description = render_history(history)
    if live is None:
        answer = lam.create_alias(FunctionName=physical, Name=naming.LIVE_ALIAS, FunctionVersion=after.version,
                                  RoutingConfig=routing, Description=description)
    else:
        answer = lam.update_alias(FunctionName=physical, Name=naming.LIVE_ALIAS, FunctionVersion=after.version,
                                  RoutingConfig=routing, Description=description, **revision_guard(live))
    return AliasState.of(answer)


def promote(cfg: EnvConfig, function: str, *, version: str | None = None, weight: int | None = None,
            ui: UI | None = None, lam: Any = None, aliases_now: dict[str, dict] | None = None,
            published: bool = False) -> dict:
    """Point live at ``version`` (default: staging's); with ``weight``, only PCT % of traffic.

    ``aliases_now``: the function's aliases as the caller read them just before (their RevisionId
    guards the move); ``published``: the caller has just published ``version`` (no need to check
    that it exists). Both from ``publish-lambda --deploy --promote``."""
    ui = ui or UI()
    check_functions(cfg, [function])
    physical = naming.function_name(cfg, function)
    if version is not None and not str(version).isdigit():
        raise UsageError(f"not a published version number: {version!r}", where="--version",
                         hint="pass the number of a published version, e.g. --version 3")
    if weight is not None and not 1 <= weight <= 99:
        raise UsageError(f"--weight must be between 1 and 99, found {weight}", where="--weight")
    if published and version is None:
        raise UsageError("published=True needs the version that was published")
    aws.check_account(cfg)
    lam = lam or aws.client("lambda", cfg.region)
    with aws.errors(f"promote {function}", physical):
        current = aliases_now if aliases_now is not None else list_aliases(lam, physical)
        live = current.get(naming.LIVE_ALIAS)
        if version is None:
            staging = current.get(naming.STAGING_ALIAS)
            if staging is None or not str(staging.get("FunctionVersion", "")).isdigit():
                raise Refused(
                    f"the staging alias of '{physical}' points at no published version",
                    hint="run publish-lambda --deploy first, or pass --version N",
                )
            version = staging["FunctionVersion"]
        target = str(version)
        if not published:
            get_function(lam, physical, target)  # the version must exist
        before = AliasState.of(live)
        history = parse_history(live.get("Description") if live else None)
        if weight is not None:
            if before.version is None:
                raise UsageError(f"'{physical}' has no live version to keep as primary",
                                 hint="promote without --weight first")
            if before.version == target:
                raise UsageError(f"version {target} is already live on '{physical}'", where="--weight")
            after = AliasState(before.version, {target: round(weight / 100, 4)})
        else:
            after = AliasState(target, {})
        if after == before:
            ui.info(f"{physical}: live already at {before.describe()}; nothing to do")
            return _result(cfg, function, physical, before, after, False, history, "promote")
        new_history = list(history)
        if before.version is not None:  # also for a canary: rollback then drops it
            if not new_history or new_history[0] != before.version:
                new_history.insert(0, before.version)
        ui.info(f"{physical} live: {before.describe()} -> {after.describe()}")
        if needs_confirmation(cfg):
            ui.confirm(f"Move live of {physical} in {cfg.name}?", what=f"promoting {function} in {cfg.name}")
        result = _apply(lam, physical, live, after, new_history)
    if result != after:
        raise OperationFailed(f"live of '{physical}' is at {result.describe()} after the update, expected {after.describe()}",
                              hint="someone else moved it meanwhile; check and re-run")
    return _result(cfg, function, physical, before, after, True, new_history[:HISTORY_LIMIT], "promote")


def rollback(cfg: EnvConfig, function: str, *, ui: UI | None = None) -> dict:
    """Point live back to the version it had before the last promote (clearing any canary)."""
    ui = ui or UI()
    check_functions(cfg, [function])
    physical = naming.function_name(cfg, function)
    aws.check_account(cfg)
    lam = aws.client("lambda", cfg.region)
    with aws.errors(f"roll back {function}", physical):
        live = list_aliases(lam, physical).get(naming.LIVE_ALIAS)
        history = parse_history(live.get("Description") if live else None)
        if live is None or not history:
            raise Refused(
                f"no earlier live version of '{physical}' is recorded",
                hint="nothing was changed; point live explicitly with promote --version N",
            )
        before = AliasState.of(live)
        after = AliasState(history[0], {})
        get_function(lam, physical, after.version)
        ui.info(f"{physical} live: {before.describe()} -> {after.describe()}")
        if needs_confirmation(cfg):
            ui.confirm(f"Roll back live of {physical} in {cfg.name}?", what=f"rolling back {function} in {cfg.name}")
        result = _apply(lam, physical, live, after, history[1:])
    if result != after:
        raise OperationFailed(f"live of '{physical}' is at {result.describe()} after the update, expected {after.describe()}",
                              hint="someone else moved it meanwhile; check and re-run")
    return _result(cfg, function, physical, before, after, True, history[1:], "rollback")
