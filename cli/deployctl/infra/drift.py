"""deployctl drift: what was changed outside Terraform, from a refresh-only plan.

render -> account guard -> init -> ``terraform plan -refresh-only -out`` -> ``show -json`` ->
the plan's ``resource_drift``: each resource whose real state differs from the state file, with
the attribute paths that differ and their before (state) and after (AWS) values. Values Terraform
marks sensitive (``before_sensitive``/``after_sensitive``) are replaced by ``(sensitive)``; the
saved plan and its JSON are deleted as soon as the drift is read (they may hold secrets) and only
the masked drift is kept. The refresh-only plan is never applied: the state stays as it was.

The plan lives in ``<work_dir>/drift/``, apart from the reviewed plan bundle (``<work_dir>/plan/``),
which a drift check never touches. The outcome (when, whether drift was found, which addresses) is
recorded for ``deployctl status`` (:mod:`deployctl.infra.records`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

from deployctl.config import EnvConfig, Settings
from deployctl.infra import records
from deployctl.infra import render as render_mod
from deployctl.infra.pipeline import account_guard
from deployctl.infra.terraform import Terraform, backend_type, uses_aws
from deployctl.ui import UI

MASK = "(sensitive)"
DRIFT_DIR = "drift"


# -- extraction (pure: a ``terraform show -json`` document in, masked drift out) -------------------


def _sub(marks: Any, key: str | int) -> Any:
    """The sensitivity marks of one child: ``True`` marks a whole subtree."""
    if marks is True:
        return True
    if isinstance(marks, dict) and isinstance(key, str):
        return marks.get(key, False)
    if isinstance(marks, list) and isinstance(key, int):
        return marks[key] if key < len(marks) else False
    return False


def _any_marked(marks: Any) -> bool:
    if marks is True:
        return True
    if isinstance(marks, dict):
        return any(_any_marked(v) for v in marks.values())
    if isinstance(marks, list):
        return any(_any_marked(v) for v in marks)
    return False


def _path_text(path: list[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(whole resource)"


def attribute_changes(before: Any, after: Any, before_sensitive: Any = False, after_sensitive: Any = False,
                      path: list[str | int] | None = None) -> Iterator[dict]:
    """Every leaf (or differing list) path where ``before`` and ``after`` differ, values masked where sensitive."""
    path = path or []
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from attribute_changes(before.get(key), after.get(key), _sub(before_sensitive, key),
                                         _sub(after_sensitive, key), [*path, key])
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from attribute_changes(b, a, _sub(before_sensitive, i), _sub(after_sensitive, i), [*path, i])
        return
    if _empty(before) and _empty(after) or before == after:
        return
    sensitive = _any_marked(before_sensitive) or _any_marked(after_sensitive)
    yield {
        "path": _path_text(path),
        "before": MASK if sensitive else before,
        "after": MASK if sensitive else after,
        "sensitive": sensitive,
    }


def _empty(value: Any) -> bool:
    """null, "" , [] and {} are the same "nothing" to a provider (an unset block reads back as [])."""
    return value is None or value == "" or value == [] or value == {}


def extract(plan: dict) -> list[dict]:
    """The drifted managed resources of a refresh-only plan's JSON, sorted by address."""
    found = []
    for rd in plan.get("resource_drift") or []:
        if rd.get("mode", "managed") != "managed":
            continue
        change = rd.get("change") or {}
        actions = change.get("actions") or []
        if actions in (["no-op"], ["read"], []):
            continue
        entry: dict[str, Any] = {"address": rd.get("address", "?"), "type": rd.get("type", ""), "changes": []}
        if change.get("after") is None or actions == ["delete"]:
            entry["action"] = "deleted"
        else:
            entry["action"] = "changed"
            entry["changes"] = list(attribute_changes(change.get("before"), change.get("after"),
                                                      change.get("before_sensitive", False),
                                                      change.get("after_sensitive", False)))
            if not entry["changes"]:
                continue  # only null/empty shuffles: nothing a person changed
        found.append(entry)
    return sorted(found, key=lambda e: e["address"])


def _short(value: Any, limit: int = 80) -> str:
    text = value if value == MASK else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drift_text(result: dict, style=lambda text, *s: text) -> str:
    resources = result["resources"]
    if not resources:
        return f"no drift in {result['env']}: AWS matches the Terraform state"
    lines = [style(f"drift in {result['env']}: {len(resources)} resource(s) changed outside Terraform", "yellow", "bold")]
    for r in resources:
        if r["action"] == "deleted":
            lines.append(style(f"  - {r['address']}  (deleted outside Terraform)", "red"))
            continue
        lines.append(f"  ~ {r['address']}")
        for c in r["changes"]:
            lines.append(f"      {c['path']}: {_short(c['before'])} -> {_short(c['after'])}")
    lines.append(f"fix: apply the configuration again (deployctl plan --env {result['env']} && deployctl apply "
                 f"--env {result['env']}), or change the configuration to match")
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------------


def run_drift(settings: Settings, cfg: EnvConfig, ui: UI) -> dict:
    """Refresh-only plan of the env; returns ``{"env", "drift", "resources", ...}`` and records the outcome."""
    tf = Terraform(cfg, settings, ui)
    tfv = tf.version()
    account = account_guard(cfg, needed=uses_aws(cfg.env_dir))
    ui.step(f"render {render_mod.TFVARS_FILE} and {render_mod.BACKEND_FILE}")
    rendered = render_mod.render(cfg, allow_missing_artifacts=True)
    ui.step(f"{tfv.name} {tfv.version}: init")
    tf.init(rendered.backend_path if backend_type(cfg.env_dir) == "s3" else None)
    work = cfg.work_dir / DRIFT_DIR
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, mode=0o700)
    planfile = work / "tfplan"
    try:
        ui.step("plan -refresh-only (what changed outside Terraform)")
        tf.plan(planfile, refresh_only=True)
        resources = extract(tf.show_json(planfile))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the plan may hold sensitive values: keep only the masked drift
    record = records.record_drift(cfg, resources)
    return {"env": cfg.name, "drift": bool(resources), "resources": resources, "checked_at": record["at"],
            "terraform": {"name": tfv.name, "version": tfv.version}, "account_guard": account}
