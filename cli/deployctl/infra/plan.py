"""Plan bundles: summary of a plan, fingerprint of its inputs, and the bundle on disk.

A bundle lives in ``<work_dir>/plan/`` (git-ignored):

    tfplan              the saved plan terraform apply takes
    plan.json           terraform show -json (SECRET: may hold sensitive values; mode 0600, never printed)
    policy.json         both gate results (source and plan)
    policy.junit.xml    the same, for CI
    summary.json        creates/updates/deletes/replaces
    fingerprint.json    sha256 of every input (modules, env root, rendered tfvars, manifest, terraform version)
    bundle.json         metadata; written last, so a bundle without it is incomplete

Every one of these files can be rewritten by whoever can write the directory: apply treats
them as claims that can only make it refuse, and derives what it enforces from a private
copy of ``tfplan`` (see ``planfile`` and ``pipeline.run_apply``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deployctl.config import EnvConfig
from deployctl.errors import Refused
from deployctl.fsutil import atomic_write

BUNDLE_SCHEMA = 1
PLAN_FILE = "tfplan"
PLAN_JSON = "plan.json"
POLICY_JSON = "policy.json"
POLICY_JUNIT = "policy.junit.xml"
SUMMARY_JSON = "summary.json"
FINGERPRINT_JSON = "fingerprint.json"
BUNDLE_JSON = "bundle.json"
APPLIED_JSON = "applied.json"

# Resources whose destruction loses data or breaks what depends on them.
STATEFUL_TYPES = frozenset({
    "aws_dynamodb_table",
    "aws_kms_key",
    "aws_s3_bucket",
    "aws_cloudwatch_log_group",
    "aws_ssm_parameter",
    "aws_sqs_queue",
    "aws_secretsmanager_secret",
    "aws_db_instance",
    "aws_rds_cluster",
    "aws_efs_file_system",
    "aws_cognito_user_pool",
})

# "forget": a `removed { lifecycle { destroy = false } }` block drops an object from the
# state and leaves it in AWS (terraform >= 1.7); a change to apply, though nothing is destroyed.
ACTION_ORDER = ("create", "update", "replace", "delete", "forget", "read", "no-op")
SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "forget": ".", "read": "<=", "no-op": " "}


# -- summary --------------------------------------------------------------------------------


def classify(actions: list[str]) -> str:
    a = list(actions or [])
    if a in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if a == ["create"]:
        return "create"
    if a == ["delete"]:
        return "delete"
    if a == ["update"]:
        return "update"
    if a == ["read"]:
        return "read"
    if a == ["forget"]:
        return "forget"
    return "no-op"


def summarize(plan: dict) -> dict:
    """Counts and the list of changes of a ``terraform show -json`` document (no values: they may be secret)."""
    counts = dict.fromkeys(ACTION_ORDER, 0)
    changes = []
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode") == "data":
            continue
        change = rc.get("change") or {}
        action = classify(change.get("actions") or [])
        counts[action] += 1
        if action == "no-op":
            continue
        rtype = rc.get("type", "")
        stateful = rtype in STATEFUL_TYPES
        entry = {
            "address": rc.get("address", "?"),
            "type": rtype,
            "action": action,
            "stateful": stateful,
            "dangerous": stateful and action in {"delete", "replace"},
        }
        if change.get("replace_paths"):
            entry["forced_by"] = [".".join(str(p) for p in path) for path in change["replace_paths"]]
        if rc.get("action_reason"):
            entry["reason"] = rc["action_reason"]
        changes.append(entry)
    changes.sort(key=lambda c: (ACTION_ORDER.index(c["action"]), c["address"]))
    outputs = sorted(
        name for name, oc in (plan.get("output_changes") or {}).items() if classify(oc.get("actions") or []) != "no-op"
    )
    dangerous = [c["address"] for c in changes if c["dangerous"]]
    return {
        "counts": counts,
        "changes": changes,
        "dangerous": dangerous,
        "outputs_changed": outputs,
        "has_changes": bool(changes or outputs),
        "terraform_version": plan.get("terraform_version", ""),
        "errored": bool(plan.get("errored")),
    }


def summary_text(summary: dict, style=lambda text, *s: text) -> str:
    """Human summary; destroys/replacements of stateful resources in red."""
    c = summary["counts"]
    lines = []
    for ch in summary["changes"]:
        sym = SYMBOLS[ch["action"]]
        text = f"  {sym:>3} {ch['action']:<8} {ch['address']}"
        if ch.get("forced_by"):
            text += f"  (forced by {', '.join(ch['forced_by'])})"
        if ch["dangerous"]:
            lines.append(style(text + "  <- STATEFUL: data will be lost", "red", "bold"))
        elif ch["action"] in {"delete", "replace"}:
            lines.append(style(text, "yellow"))
        else:
            lines.append(text)
    if summary["outputs_changed"]:
        lines.append(f"  outputs changed: {', '.join(summary['outputs_changed'])}")
    head = (f"Plan: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
            f"{c['delete']} to delete" + (f", {c['forget']} to forget (kept in AWS, dropped from the state)"
                                          if c.get("forget") else "") + ".")
    if not summary["has_changes"]:
        head = "Plan: no changes."
    lines.insert(0, head)
    if summary["dangerous"]:
        lines.append(style(f"{len(summary['dangerous'])} stateful resource(s) would be destroyed or replaced: "
                           + ", ".join(summary["dangerous"]), "red", "bold"))
    return "\n".join(lines)


# -- fingerprint --------------------------------------------------------------------------------

_SKIP_DIRS = {".terraform", "terraform.tfstate.d", "__pycache__"}
_SKIP_FILES = {".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup"}


def _files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    if not base.is_dir():
        return []
    out = []
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if not p.is_file() or any(part in _SKIP_DIRS for part in rel.parts[:-1]) or p.name in _SKIP_FILES:
            continue
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            continue
        out.append(p)
    return out


def fingerprint_inputs(cfg: EnvConfig, terraform_version: str) -> dict[str, str]:
    """sha256 of every input of a plan, by path relative to the project root.

    Modules, the env root (its .tf files, the rendered tfvars and backend
    config, env.toml, the artifact manifest), defaults.toml, the OpenAPI
    document and the gate config; plus the terraform version.
    """
    root = cfg.root
    bases = [
        root / "terraform" / "modules",
        cfg.env_dir,
        root / "terraform" / "envs" / "defaults.toml",
        root / "api",
        root / "policy" / "gate.toml",
    ]
    parts: dict[str, str] = {"terraform-version": terraform_version}
    for base in bases:
        for p in _files(base):
            parts[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return parts


def digest(parts: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(parts):
        h.update(f"{k}\0{parts[k]}\n".encode())
    return h.hexdigest()


def diff_inputs(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changed = [f"{k} changed" for k in sorted(old) if k in new and old[k] != new[k]]
    changed += [f"{k} removed" for k in sorted(old) if k not in new]
    changed += [f"{k} added" for k in sorted(new) if k not in old]
    return changed


# -- the bundle on disk ------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    dir: Path
    meta: dict = field(default_factory=dict)

    @classmethod
    def for_env(cls, cfg: EnvConfig) -> Bundle:
        return cls(cfg.work_dir / "plan")

    def path(self, name: str) -> Path:
        return self.dir / name

    def reset(self) -> None:
        """Remove any previous bundle: a failed plan must never leave an appliable one behind."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, mode=0o700)

    def write_json(self, name: str, data, *, secret: bool = False) -> Path:
        return atomic_write(self.path(name), json.dumps(data, indent=1, sort_keys=True) + "\n",
                            mode=0o600 if secret else 0o644)

    def read_json(self, name: str):
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def load(self) -> Bundle:
        """Load ``bundle.json``; Refused if there is no complete bundle."""
        p = self.path(BUNDLE_JSON)
        if not p.is_file():
            raise Refused("there is no saved plan for this environment", where=str(self.dir),
                          hint="run deployctl plan first")
        try:
            self.meta = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise Refused("the saved plan bundle is damaged", where=str(p), hint="run deployctl plan again") from None
        if self.meta.get("schema") != BUNDLE_SCHEMA:
            raise Refused("the saved plan bundle has an unknown format", where=str(p), hint="run deployctl plan again")
        return self

    def finish(self, meta: dict) -> None:
        meta = {"schema": BUNDLE_SCHEMA, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta}
        meta["plan_sha256"] = sha256_file(self.path(PLAN_FILE))
        self.write_json(BUNDLE_JSON, meta)
        self.meta = meta


def verify(bundle: Bundle, cfg: EnvConfig, current: dict[str, str]) -> None:
    """Refused unless the bundle passed both gates, is intact, unapplied, for this env, and not stale."""
    meta = bundle.meta
    hint = f"run deployctl plan --env {cfg.name}"
    where = str(bundle.dir)
    if meta.get("env") != cfg.name:
        raise Refused(f"the saved plan is for environment '{meta.get('env')}', not '{cfg.name}'", where=where, hint=hint)
    if bundle.path(APPLIED_JSON).is_file():
        raise Refused("the saved plan was already applied", where=where, hint=hint)
    gates = meta.get("gates") or {}
    for kind in ("source", "plan"):
        if not (gates.get(kind) or {}).get("passed"):
            raise Refused(f"the saved plan did not pass the {kind} policy gate", where=where,
                          hint=f"fix the failed checks, then {hint}")
    planfile = bundle.path(PLAN_FILE)
    if not planfile.is_file() or sha256_file(planfile) != meta.get("plan_sha256"):
        raise Refused("the saved plan file is missing or was modified", where=where, hint=hint)
    old = bundle.read_json(FINGERPRINT_JSON) if bundle.path(FINGERPRINT_JSON).is_file() else {}
    if digest(old) != meta.get("fingerprint") or digest(current) != meta.get("fingerprint"):
        changes = diff_inputs(old, current) or ["the fingerprint record does not match"]
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise Refused(f"the saved plan is stale: {shown}", where=where, hint=hint)
