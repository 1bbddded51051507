"""planfile: what apply reads from a plan file is checked against the tree, including hostile plan files.

The plan files here are written the way terraform lays them out (a zip with ``tfconfig/``); an attacker
who can write the bundle can write any zip, so crafted ones are the real input too. Real plan files
from terraform: tests/test_plan.py and tests/security/test_apply_attacks.py.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from deployctl.errors import ConfigError, Refused
from deployctl.infra import planfile


def _planfile(path, modules, files, lock=None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tfplan", b"\0")
        zf.writestr("tfconfig/modules.json", json.dumps(modules))
        for name, data in files.items():
            zf.writestr(name, data)
        if lock is not None:
            zf.writestr(".terraform.lock.hcl", lock)
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "project"
    env = root / "terraform/envs/dev"
    mod = root / "terraform/modules/kms"
    env.mkdir(parents=True)
    mod.mkdir(parents=True)
    (env / "main.tf").write_text('module "kms" {\n  source = "../../modules/kms"\n}\n')
    (mod / "main.tf").write_text("output \"x\" {\n  value = 1\n}\n")
    return root, env


def test_a_snapshot_equal_to_the_tree_has_no_drift_and_any_edit_is_named(tree, tmp_path):
    root, env = tree
    modules = [{"Key": "", "Dir": "."}, {"Key": "kms", "Source": "../../modules/kms", "Dir": "../../modules/kms"}]
    files = {"tfconfig/m-/main.tf": (env / "main.tf").read_bytes(),
             "tfconfig/m-kms/main.tf": (root / "terraform/modules/kms/main.tf").read_bytes()}
    snap = planfile.read_snapshot(_planfile(tmp_path / "p", modules, files, lock=b"# lock"))
    assert snap.lock == b"# lock"
    assert planfile.config_drift(snap, env, root) == []
    (root / "terraform/modules/kms/main.tf").write_text("output \"x\" {\n  value = 2\n}\n")
    (env / "extra.tf").write_text("")
    (env / ".hidden.tf").write_text("")  # terraform skips hidden files: so does the comparison
    assert planfile.config_drift(snap, env, root) == ["terraform/envs/dev/extra.tf added",
                                                      "terraform/modules/kms/main.tf changed"]


def test_hostile_plan_files_are_refused(tree, tmp_path):
    root, env = tree
    outside = [{"Key": "", "Dir": "."}, {"Key": "x", "Dir": "../../../../.."}]
    snap = planfile.read_snapshot(_planfile(tmp_path / "a", outside, {"tfconfig/m-/main.tf": (env / "main.tf").read_bytes()}))
    assert planfile.config_drift(snap, env, root) == ["module.x comes from '../../../../..', outside the project"]
    with pytest.raises(Refused, match="unexpected member"):
        planfile.read_snapshot(_planfile(tmp_path / "b", [{"Key": "", "Dir": "."}], {"tfconfig/m-/../../x.tf": b""}))
    with pytest.raises(Refused, match="unlisted module"):
        planfile.read_snapshot(_planfile(tmp_path / "c", [{"Key": "", "Dir": "."}], {"tfconfig/m-evil/main.tf": b""}))
    (tmp_path / "d").write_bytes(b"not a zip")
    with pytest.raises(Refused, match="not a plan file"):
        planfile.read_snapshot(tmp_path / "d")


def test_variables_compare_as_json_and_only_declared_ones():
    doc = {"configuration": {"root_module": {"variables": {"logs": {}, "flag": {}}}},
           "variables": {"logs": {"value": {"retention_days": 3}}, "flag": {"value": True}}}
    assert planfile.variable_drift(doc, {"logs": {"retention_days": 3.0}, "flag": True, "undeclared": 1}) == []
    assert planfile.variable_drift(doc, {"logs": {"retention_days": 3}, "flag": 1}) == ["variable flag changed"]
    assert planfile.variable_drift(doc, {"logs": {"retention_days": 3, "x": None}, "flag": True}) == [
        "variable logs changed"]


def test_expected_changes_file_errors_are_usage_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        planfile.load_expected(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"changes": [{"address": 1}]}')
    with pytest.raises(ConfigError, match="no list 'changes'"):
        planfile.load_expected(tmp_path / "bad.json")
    assert planfile.expectation_diff([("a.b", "update")], [("a.b", "replace")]) == [
        "replace a.b (not in the reviewed plan)", "update a.b (reviewed, but not planned now)"]
