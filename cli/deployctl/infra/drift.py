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
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
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
    if _empty(before) and _empty(after) or before == after or _zero_for_null(before, after):
        return
    sensitive = _any_marked(before_sensitive) or _any_marked(after_sensitive)
    yield {
        "path": _path_text(path),
        "before": MASK if sensitive else before,
        "after": MASK if sensitive else after,
        "sensitive": sensitive,
    }


def _zero_for_null(before: Any, after: Any) -> bool:
    """null on one side, the type's zero value (0, false) on the other: how the provider reads back
    an unset field (an alarm's metric_query ``period`` is null after create, 0 after a refresh)."""
    if before is None:
        before, after = after, before
    return after is None and (before is False or (type(before) in (int, float) and before == 0))


def _empty(value: Any) -> bool:
    """null, "" , [] and {} are the same "nothing" to a provider (an unset block reads back as [])."""
    return value is None or value == "" or value == [] or value == {}


# -- which attributes the configuration sets ---------------------------------------------------------------

_MODULE_STEP = re.compile(r'module\.([A-Za-z0-9_-]+)(?:\[(?:"(?:[^"\\]|\\.)*"|\d+)\])?\.')
_RESOURCE = re.compile(r'([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)(?:\[(?:"(?:[^"\\]|\\.)*"|\d+)\])?$')
_DYNAMIC = re.compile(r'\bdynamic\s+"([A-Za-z0-9_]+)"')


def config_key(address: str) -> tuple[tuple[str, ...], str] | None:
    """``module.a["k"].module.b.TYPE.NAME[0]`` -> (("a", "b"), "TYPE.NAME"): where its configuration is."""
    modules, pos = [], 0
    while True:
        m = _MODULE_STEP.match(address, pos)
        if not m:
            break
        modules.append(m.group(1))
        pos = m.end()
    m = _RESOURCE.match(address, pos)
    return (tuple(modules), f"{m.group(1)}.{m.group(2)}") if m else None


def _resource_blocks(text: str, rtype: str, name: str) -> list[str]:
    """The bodies of ``resource "TYPE" "NAME" { ... }`` in HCL text (brace matching; strings are rare enough)."""
    bodies = []
    for m in re.finditer(rf'resource\s+"{re.escape(rtype)}"\s+"{re.escape(name)}"\s*\{{', text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        bodies.append(text[m.end():i])
    return bodies


def configured_attributes(plan: dict, root_dir: Path | None = None) -> dict[tuple[tuple[str, ...], str], set[str]]:
    """Per resource configuration, the top-level attributes and blocks its configuration sets.

    From the plan's ``configuration`` (``expressions``), plus the blocks written as ``dynamic "NAME"``
    (Terraform leaves those out of ``expressions``), read from the module's ``.tf`` files when
    ``root_dir`` (the root module's directory) is given.
    """
    found: dict[tuple[tuple[str, ...], str], set[str]] = {}

    def walk(module: dict, path: tuple[str, ...], directory: Path | None) -> None:
        text = None
        for res in module.get("resources") or []:
            if res.get("mode", "managed") != "managed":
                continue
            names = set(res.get("expressions") or {})
            if directory is not None:
                if text is None:
                    text = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                                     for p in sorted(directory.glob("*.tf")))
                for body in _resource_blocks(text, res.get("type", ""), res.get("name", "")):
                    names |= set(_DYNAMIC.findall(body))
            found[(path, f"{res.get('type', '')}.{res.get('name', '')}")] = names
        for name, call in (module.get("module_calls") or {}).items():
            source = call.get("source") or ""
            sub = (directory / source).resolve() if directory is not None and source.startswith(".") else None
            walk(call.get("module") or {}, (*path, name), sub)

    walk((plan.get("configuration") or {}).get("root_module") or {}, (), root_dir)
    return found


def extract(plan: dict, root_dir: Path | None = None) -> list[dict]:
    """The drifted managed resources of a refresh-only plan's JSON, sorted by address.

    A resource has drifted when it was deleted outside Terraform, or when an attribute its
    configuration sets changed. Changes to attributes the configuration does not set (computed ones,
    or ones another resource manages: an IAM role's ``inline_policy`` written by
    ``aws_iam_role_policy``, an SNS topic's ``policy`` written by ``aws_sns_topic_policy``) are not
    drift; they are kept in each entry's ``other_changes``, and a resource with nothing else is left
    out (see :func:`unmanaged`). Without a ``configuration`` in the plan, every change counts.
    """
    return [r for r in _all(plan, root_dir) if r["action"] == "deleted" or r["changes"]]


def unmanaged(plan: dict, root_dir: Path | None = None) -> list[dict]:
    """Resources whose only changes are to attributes their configuration does not set."""
    return [r for r in _all(plan, root_dir) if r["action"] == "changed" and not r["changes"]]


def _all(plan: dict, root_dir: Path | None) -> list[dict]:
    configured = configured_attributes(plan, root_dir) if plan.get("configuration") else None
    found = []
    for rd in plan.get("resource_drift") or []:
        if rd.get("mode", "managed") != "managed":
            continue
        change = rd.get("change") or {}
        actions = change.get("actions") or []
        if actions in (["no-op"], ["read"], []):
            continue
        address = rd.get("address", "?")
        entry: dict[str, Any] = {"address": address, "type": rd.get("type", ""), "changes": [], "other_changes": []}
        if change.get("after") is None or actions == ["delete"]:
            entry["action"] = "deleted"
            found.append(entry)
            continue
        entry["action"] = "changed"
        changes = list(attribute_changes(change.get("before"), change.get("after"),
                                         change.get("before_sensitive", False), change.get("after_sensitive", False)))
        if not changes:
            continue  # only null/empty shuffles: nothing a person changed
        key = config_key(address)
        names = configured.get(key) if configured is not None and key is not None else None
        for c in changes:
            top = re.split(r"[.\[]", c["path"], maxsplit=1)[0]
            (entry["changes"] if names is None or top in names else entry["other_changes"]).append(c)
        found.append(entry)
    return sorted(found, key=lambda e: e["address"])


def _short(value: Any, limit: int = 80) -> str:
    text = value if value == MASK else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drift_text(result: dict, style=lambda text, *s: text) -> str:
    resources = result["resources"]
    note = []
    if result.get("unmanaged"):
        note = [f"(not drift: {len(result['unmanaged'])} resource(s) changed only in attributes the configuration "
                "does not set, computed or managed by another resource: "
                + ", ".join(u["address"] for u in result["unmanaged"][:5])
                + (" ..." if len(result["unmanaged"]) > 5 else "") + ")"]
    if not resources:
        return "\n".join([f"no drift in {result['env']}: AWS matches the Terraform state", *note])
    lines = [style(f"drift in {result['env']}: {len(resources)} resource(s) changed outside Terraform", "yellow", "bold")]
    for r in resources:
        if r["action"] == "deleted":
            lines.append(style(f"  - {r['address']}  (deleted outside Terraform)", "red"))
            continue
        lines.append(f"  ~ {r['address']}")
        for c in r["changes"]:
            lines.append(f"      {c['path']}: {_short(c['before'])} -> {_short(c['after'])}")
    lines += note
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
        doc = tf.show_json(planfile)
        resources, ignored = extract(doc, cfg.env_dir), unmanaged(doc, cfg.env_dir)
        del doc  # may hold sensitive values: only the masked drift is kept
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the plan may hold sensitive values: keep only the masked drift
    record = records.record_drift(cfg, resources)
    return {"env": cfg.name, "drift": bool(resources), "resources": resources, "checked_at": record["at"],
            "unmanaged": [{"address": r["address"], "paths": [c["path"] for c in r["other_changes"]]} for r in ignored],
            "terraform": {"name": tfv.name, "version": tfv.version}, "account_guard": account}
