"""What a saved plan file says about itself, compared with the tree apply runs in.

Every file of a plan bundle can be rewritten by whoever can write the bundle directory, so
apply derives what it enforces from the ``tfplan`` alone (see ``pipeline.run_apply``):

- the change summary and the stateful-destroy guard: from ``terraform show -json`` of it;
- the plan gate: checkov on that JSON with the repository's own ``policy/gate.toml``;
- staleness: a plan file carries a snapshot of the configuration it was made from
  (``tfconfig/`` in the file, the copy ``terraform apply PLANFILE`` really applies) and the
  values of the root variables; both must equal the current tree and the freshly rendered
  tfvars. A changed state is Terraform's own refusal ("Saved plan is stale").
- its shape: ``deployctl plan`` never asks for ``-replace``, ``-target`` (except the
  foundation plan) or ``-destroy`` (except a destroy bundle), so a plan file that did is
  not one deployctl made for this bundle.

Nothing here prints a value: plan JSON may hold secrets; messages name files and variables only.
"""

from __future__ import annotations

import json
import posixpath
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from deployctl.errors import ConfigError, Refused

CONFIG_DIR = "tfconfig/"
MODULES_JSON = "tfconfig/modules.json"
LOCK_MEMBER = ".terraform.lock.hcl"
CONFIG_SUFFIXES = (".tf", ".tf.json")
_MAX_MEMBER = 64 * 1024 * 1024


@dataclass
class Snapshot:
    """The configuration a plan file was made from: module key -> directory (relative to the root
    module) and that module's files by name; plus the provider lock file recorded in it."""

    modules: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    lock: bytes | None = None


def read_snapshot(planfile: Path) -> Snapshot:
    """Read the configuration snapshot of a terraform/tofu plan file; Refused if it has none."""
    where = str(planfile)
    try:
        zf = zipfile.ZipFile(planfile)
    except (zipfile.BadZipFile, OSError):
        raise Refused("the saved plan file is not a plan file terraform wrote", where=where,
                      hint="run deployctl plan again") from None
    snap = Snapshot()
    with zf:
        members = {i.filename: i for i in zf.infolist()}
        if MODULES_JSON not in members:
            raise Refused("the saved plan file carries no configuration snapshot", where=where,
                          hint="run deployctl plan again")

        def read(name: str) -> bytes:
            info = members[name]
            if info.file_size > _MAX_MEMBER:
                raise Refused(f"the saved plan file has an oversized member {name}", where=where)
            return zf.read(info)

        try:
            entries = json.loads(read(MODULES_JSON))
        except ValueError:
            raise Refused("the saved plan file's module list is damaged", where=where) from None
        if not isinstance(entries, list):
            raise Refused("the saved plan file's module list is damaged", where=where)
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Key", ""), str) \
                    or not isinstance(entry.get("Dir", ""), str):
                raise Refused("the saved plan file's module list is damaged", where=where)
            snap.modules[entry.get("Key", "")] = entry.get("Dir") or "."
            snap.files.setdefault(entry.get("Key", ""), {})
        for name in members:
            if not name.startswith(CONFIG_DIR) or name == MODULES_JSON or name.endswith("/"):
                continue
            rest = name[len(CONFIG_DIR):]
            head, _, fname = rest.partition("/")
            if not head.startswith("m-") or not fname or any(part in {"", ".", ".."} for part in fname.split("/")):
                raise Refused(f"the saved plan file has an unexpected member {name!r}", where=where)
            key = head[2:]
            if key not in snap.modules:
                raise Refused(f"the saved plan file has files for an unlisted module {key!r}", where=where)
            snap.files[key][fname] = read(name)
        if LOCK_MEMBER in members:
            snap.lock = read(LOCK_MEMBER)
    return snap


def config_drift(snap: Snapshot, env_dir: Path, root: Path) -> list[str]:
    """How the current tree differs from the configuration in the plan file (empty: it does not).

    Every snapshot file must exist in the tree with the same bytes, and every ``*.tf``/``*.tf.json``
    of those module directories must be in the snapshot. Module directories must lie inside the
    project (or in the env root's ``.terraform/modules``, where init puts registry modules).
    """
    problems: list[str] = []
    project = root.resolve()
    for key, rel_dir in sorted(snap.modules.items()):
        label = f"module.{key}" if key else "the root module"
        if posixpath.isabs(rel_dir) or "\\" in rel_dir:
            problems.append(f"{label} comes from {rel_dir!r}, outside the project")
            continue
        directory = (env_dir / rel_dir).resolve()
        if not directory.is_relative_to(project):
            problems.append(f"{label} comes from {rel_dir!r}, outside the project")
            continue
        shown = _rel(directory, project)
        planned = snap.files.get(key, {})
        for name, data in sorted(planned.items()):
            path = directory / name
            try:
                current = path.read_bytes()
            except OSError:
                problems.append(f"{shown}/{name} removed")
                continue
            if current != data:
                problems.append(f"{shown}/{name} changed")
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if _loaded(path.name) and path.name not in planned and path.is_file():
                    problems.append(f"{shown}/{path.name} added")
        elif not planned:
            problems.append(f"{shown} removed")
    return problems


def _loaded(name: str) -> bool:
    """Whether terraform loads a file of a module directory (it skips hidden and editor files)."""
    return name.endswith(CONFIG_SUFFIXES) and not name.startswith((".", "#")) and not name.endswith("~")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _same(a, b) -> bool:
    """JSON equality where 3 == 3.0 but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def variable_drift(doc: dict, tfvars: dict) -> list[str]:
    """Root variables whose value in the plan differs from the freshly rendered tfvars (names only).

    Terraform keeps the values as given (before type conversion) in the plan, so they compare
    as JSON. A tfvars key the root does not declare is ignored by terraform, and here.
    """
    declared = set(((doc.get("configuration") or {}).get("root_module") or {}).get("variables") or {})
    planned = doc.get("variables") or {}
    out = []
    for name in sorted(tfvars):
        if name not in declared:
            continue
        if name not in planned or not _same((planned[name] or {}).get("value"), tfvars[name]):
            out.append(f"variable {name} changed")
    return out


def _managed(module: dict | None) -> bool:
    if not module:
        return False
    if any(r.get("mode") != "data" for r in module.get("resources") or []):
        return True
    return any(_managed(child) for child in module.get("child_modules") or [])


def destroys_everything(doc: dict) -> bool:
    """A ``plan -destroy``: managed resources in the prior state, none planned, and deletes."""
    prior = ((doc.get("prior_state") or {}).get("values") or {}).get("root_module")
    planned = (doc.get("planned_values") or {}).get("root_module")
    deletes = any("delete" in ((rc.get("change") or {}).get("actions") or [])
                  for rc in doc.get("resource_changes") or [] if rc.get("mode") != "data")
    return deletes and _managed(prior) and not _managed(planned)


def shape_problems(doc: dict, *, destroy: bool, foundation: bool) -> list[str]:
    """Options deployctl plan never uses for this kind of bundle, read from the plan itself."""
    out = []
    forced = sorted(rc.get("address", "?") for rc in doc.get("resource_changes") or []
                    if rc.get("action_reason") == "replace_by_request")
    if forced:
        out.append(f"it replaces {', '.join(forced[:3])} on request (-replace), which deployctl plan never asks for")
    if doc.get("complete") is False and not foundation:
        out.append("it is a partial (-target) plan, and the bundle is not a foundation plan")
    if not destroy and destroys_everything(doc):
        out.append("it destroys every resource (-destroy), and the bundle is not a destroy plan")
    if doc.get("errored"):
        out.append("terraform marked it as errored")
    return out


# -- expected changes (CI: the plan reviewed on the pull request) --------------------------------


def changes_of(summary: dict) -> list[tuple[str, str]]:
    """(address, action) of every change in a summary, sorted."""
    return sorted((c["address"], c["action"]) for c in summary.get("changes") or [])


def load_expected(path: Path) -> list[tuple[str, str]]:
    """The changes of a ``summary.json`` written by ``deployctl plan`` (what a reviewer saw)."""
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the expected changes: {exc.strerror}", where=where,
                          hint="pass the summary.json of the reviewed plan") from None
    except ValueError:
        raise ConfigError("the expected changes are not JSON", where=where,
                          hint="pass the summary.json of the reviewed plan") from None
    changes = data.get("changes") if isinstance(data, dict) else None
    if not isinstance(changes, list) or not all(
            isinstance(c, dict) and isinstance(c.get("address"), str) and isinstance(c.get("action"), str)
            for c in changes):
        raise ConfigError("the expected changes have no list 'changes' of {address, action}", where=where,
                          hint="pass the summary.json that deployctl plan wrote for the reviewed plan")
    return sorted((c["address"], c["action"]) for c in changes)


def expectation_diff(expected: list[tuple[str, str]], actual: list[tuple[str, str]]) -> list[str]:
    """What the new plan does that the reviewed one did not, and the other way round."""
    want, have = set(expected), set(actual)
    out = [f"{action} {address} (not in the reviewed plan)" for address, action in sorted(have - want)]
    out += [f"{action} {address} (reviewed, but not planned now)" for address, action in sorted(want - have)]
    return out
