"""deployctl destroy on the provider-free fixture project with the real (test-only) terraform binary.

The whole life cycle against AWS (moto) is in tests/e2e/; here: the refusals come
before anything runs, a destroy bundle goes through the same apply path, and what
terraform leaves is read back from the state.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tf_helpers import TERRAFORM, copy_project, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path):
    return copy_project("project", tmp_path)


def _bundle(project, env):
    return project / ".deployctl" / env / "plan"


def _outputs(project, env) -> dict:
    proc = subprocess.run([str(TERRAFORM), "output", "-json"], cwd=project / "terraform/envs" / env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "{}")


def test_protected_env_refuses_before_planning_without_allow_destroy(project):
    run = run_cli(project, "destroy", "--env", "prod", "--yes", "--json")
    assert run.code == 4
    doc = json.loads(run.out)
    assert doc["ok"] is False and doc["command"] == "destroy" and doc["env"] == "prod"
    assert "deletion protection" in doc["error"]["message"] and "--allow-destroy" in doc["error"]["hint"]
    assert [ln for ln in run.err.splitlines() if ln.startswith("error:")] == [run.err.strip().splitlines()[-1]]
    assert not _bundle(project, "prod").exists()  # nothing was planned, let alone applied


def test_without_yes_a_non_interactive_destroy_is_refused_after_showing_the_plan(project):
    assert run_cli(project, "plan", "--env", "dev").code == 0
    assert run_cli(project, "apply", "--env", "dev").code == 0
    before = _outputs(project, "dev")
    assert before
    run = run_cli(project, "destroy", "--env", "dev")
    assert run.code == 4, run.err
    assert "needs confirmation" in run.err and "--yes" in run.err
    assert _outputs(project, "dev") == before  # nothing applied
    assert not (_bundle(project, "dev") / "applied.json").exists()
    # the reviewed destroy bundle is saved; apply refuses it without a confirmation too
    meta = json.loads((_bundle(project, "dev") / "bundle.json").read_text())
    assert meta["destroy"] is True and meta["gates"]["plan"]["passed"]
    assert run_cli(project, "apply", "--env", "dev").code == 4
    assert _outputs(project, "dev") == before


def test_destroy_applies_exactly_its_bundle_and_keeps_the_state_bucket_note(project):
    assert run_cli(project, "plan", "--env", "dev").code == 0
    assert run_cli(project, "apply", "--env", "dev").code == 0
    run = run_cli(project, "destroy", "--env", "dev", "--yes", "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)["result"]
    assert result["destroyed"] is True and result["plan"]["destroy"] is True
    assert result["state_bucket"]["kept"] is True and "bootstrap" in result["state_bucket"]["why"]
    assert _outputs(project, "dev") == {}
    assert json.loads((_bundle(project, "dev") / "applied.json").read_text())["status"] == "applied"
    # applying the consumed bundle again is refused
    again = run_cli(project, "apply", "--env", "dev", "--json")
    assert again.code == 4 and "already applied" in json.loads(again.out)["error"]["message"]


def test_plan_only_saves_a_destroy_bundle_that_apply_can_take_with_yes(project):
    assert run_cli(project, "plan", "--env", "dev").code == 0
    assert run_cli(project, "apply", "--env", "dev").code == 0
    run = run_cli(project, "destroy", "--env", "dev", "--plan-only")
    assert run.code == 0, run.err
    assert "destroy plan saved" in run.out and "next: deployctl apply --env dev" in run.out
    assert _outputs(project, "dev")
    assert run_cli(project, "apply", "--env", "dev", "--yes").code == 0
    assert _outputs(project, "dev") == {}


def test_protected_env_with_allow_destroy_and_yes_destroys(project):
    assert run_cli(project, "plan", "--env", "prod").code == 0
    assert run_cli(project, "apply", "--env", "prod", "--yes").code == 0
    assert _outputs(project, "prod")
    run = run_cli(project, "destroy", "--env", "prod", "--allow-destroy", "--yes")
    assert run.code == 0, run.err
    assert _outputs(project, "prod") == {}
