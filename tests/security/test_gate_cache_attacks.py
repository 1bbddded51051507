"""Attacks on the gate verdict cache (issue 18, item 1; docs/security.md, "The gate verdict cache").

The cache sits in the env's work dir, beside the plan bundle: a pull request can commit a file
under the git-ignored ``.deployctl/``, and whoever can write that dir can write the cache. A
"passed" entry planted there must not pass a failing tree or plan, and apply must never take a
cached verdict for its own: it judges the plan file it applies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deployctl.config import Settings, load_env
from deployctl.errors import Refused
from deployctl.infra import gate
from deployctl.infra import plan as plan_mod
from deployctl.ui import UI
from security.test_apply_attacks import VENDORED_MODULE, _no_imds, aws_project, bundle, cli, dynamodb  # noqa: F401
from tf_helpers import CHECKOV, FIXTURES, copy_project, run_cli

pytestmark = pytest.mark.slow

KNOWN_FAILURES = {"CKV_AWS_66", "CKV_AWS_158", "CKV_AWS_338"}
PASSED = {"failed": [], "skipped": []}


def forge(cache_dir: Path, kind: str, digest: str) -> Path:
    """The attacker's best entry: the format exactly, at the very name the victim's cache reads
    (as if it had leaked), signed with a key of the attacker's own (their deployctl, their machine)."""
    from deployctl.infra import gatecache

    victim = gatecache.GateCache.open(cache_dir)
    attacker = gatecache.GateCache(cache_dir, b"attacker's own key, not the user's")
    attacker.put(kind, digest, PASSED)
    planted = victim.path(kind, digest)
    os.replace(attacker.path(kind, digest), planted)
    return planted


def test_a_committed_passed_entry_does_not_pass_a_failing_source_tree(tmp_path):
    """A pull request commits ``.deployctl/cache/<entry>`` saying the checkov fixture (3 failed checks
    and a skip without reason) passed; ``deployctl check`` must still run checkov and fail."""
    root = copy_project("checkov", tmp_path)
    cache_dir = root / ".deployctl" / "cache"
    cache_dir.mkdir(parents=True)
    targets = [root / "terraform"]
    if hasattr(gate, "tree_hash"):  # the format before the MAC: its name is computable from the tree
        key = gate.tree_hash(root, targets, [os.path.realpath(CHECKOV)])
        (cache_dir / f"checkov-{key[:32]}.json").write_text(json.dumps(PASSED))
    else:
        files = {name: p.read_bytes() for name, p in
                 gate.terraform_files(targets[0], root, skip=gate.GENERATED_FILES).items()}
        forge(cache_dir, "source", gate.source_digest(files, ["terraform"], gate.checkov_identity(str(CHECKOV))))
    run = run_cli(root, "check", "--json")
    assert run.code == 1, run.out
    result = json.loads(run.out)["result"]
    assert not result["passed"] and not result["cached"]
    assert {f["check_id"] for f in result["findings"] if f["status"] == "failed"} == KNOWN_FAILURES


def test_a_planted_passed_entry_does_not_pass_a_failing_plan(tmp_path):
    """The plan gate of ``deployctl plan`` (pipeline.gate_plan) on a plan that fails, with a forged
    "passed" entry under that plan's own digest (the inputs are all in the checkout and the bundle)."""
    root = copy_project("checkov", tmp_path)
    cfg = load_env("dev", root)
    settings = Settings(checkov_bin=str(CHECKOV))
    plan_json = plan_mod.Bundle.for_env(cfg).path(plan_mod.PLAN_JSON)
    plan_json.parent.mkdir(parents=True)
    doc = json.loads((FIXTURES / "plans" / "dev_create_unprotected.json").read_text())
    plan_json.write_text(json.dumps(doc))
    digest = gate.plan_digest(root, doc, ".deployctl/dev/plan/plan.json", cfg.env_dir, gate.load_gate(root),
                              gate.checkov_identity(str(CHECKOV)))
    forge(cfg.work_dir / "cache", "plan", digest)
    from deployctl.infra import pipeline

    verdict = pipeline.gate_plan(settings, cfg, plan_json, doc, use_cache=True)
    assert not verdict.passed and not verdict.cached
    assert {"CKV_AWS_28", "CKV_AWS_119"} <= {f.check_id for f in verdict.blocking}


def test_apply_and_up_judge_the_plan_file_themselves_whatever_the_cache_says(aws_project, aws_env):  # noqa: F811
    """Worse than a forged entry: a genuine one (the user's own key) saying a failing plan passed, as
    a plan.json swapped in the bundle while checkov read it would leave behind. ``plan`` believes it
    (the cache is no more trusted than the bundle beside it); ``apply`` never reads the cache, and
    ``up`` applies a verdict it took from the cache only after judging the plan file again."""
    from deployctl.infra import gatecache, up

    root, terraform = aws_project
    (root / "policy/gate.toml").write_text('hard_fail = ["CKV_AWS_28"]\n')
    (root / "vendor/table").mkdir(parents=True)
    (root / "vendor/table/main.tf").write_text(VENDORED_MODULE)
    prod_main = root / "terraform/envs/prod/main.tf"
    prod_main.write_text(prod_main.read_text() + '\nmodule "vendored" {\n  source = "../../../vendor/table"\n}\n')
    run = cli(root, terraform, "plan", "--env", "prod")
    assert run.code == 1 and "CKV_AWS_28" in run.err, run.err

    cfg = load_env("prod", root)
    doc = json.loads((bundle(root, "prod") / "plan.json").read_text())
    digest = gate.plan_digest(root, doc, ".deployctl/prod/plan/plan.json", cfg.env_dir, gate.load_gate(root),
                              gate.checkov_identity(str(CHECKOV)))
    gatecache.GateCache.open(cfg.work_dir / "cache").put("plan", digest, PASSED)

    # up: plan (the poisoned verdict, from the cache) and apply in one process
    settings = Settings(terraform_bin=terraform, checkov_bin=str(CHECKOV), assume_yes=True)
    with pytest.raises(Refused) as refused:
        up._plan_and_apply(settings, cfg, UI(json_mode=True), foundation=False)
    assert "fails the plan policy gate" in refused.value.message and "CKV_AWS_28" in refused.value.message
    meta = json.loads((bundle(root, "prod") / "bundle.json").read_text())
    assert meta["gates"]["plan"]["passed"]  # plan believed the cache
    assert json.loads((bundle(root, "prod") / "policy.json").read_text())["plan"]["cached"]

    # apply of that bundle (its plan gate passed, from the cache): the verdict is derived again
    run = cli(root, terraform, "apply", "--env", "prod", "--yes")
    assert run.code == 4, run.err
    assert "fails the plan policy gate" in run.err and "CKV_AWS_28" in run.err
    assert dynamodb(aws_env).list_tables()["TableNames"] == []  # nothing was created
