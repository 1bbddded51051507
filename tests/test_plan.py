"""plan -> bundle -> apply with the real terraform binary on provider-free fixture roots.

Each test plans once (checkov runs on the plan JSON each time; the source scan
is cached across tests because the fixture project is shared).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from deployctl import runner
from deployctl.errors import Interrupted
from tf_helpers import copy_project, run_cli

pytestmark = pytest.mark.slow


class Recording(runner.Runner):
    """The real runner, recording every command; optionally interrupting one."""

    def __init__(self, interrupt: str | None = None):
        super().__init__()
        self.calls: list[list[str]] = []
        self.interrupt = interrupt

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.interrupt and len(argv) > 1 and argv[1] == self.interrupt:
            # what Runner.run raises after forwarding Ctrl-C to the tool and waiting for it
            raise Interrupted(f"interrupted; {os.path.basename(argv[0])} was stopped and has exited")
        return super().run(argv, **kwargs)

    def terraform(self, sub: str) -> list[list[str]]:
        return [c for c in self.calls if os.path.basename(c[0]) == "terraform" and len(c) > 1 and c[1] == sub]


@pytest.fixture
def recorder():
    rec = Recording()
    previous = runner.set_runner(rec)
    yield rec
    runner.set_runner(previous)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project("project", tmp_path_factory.mktemp("pipeline"))


def bundle_dir(root, env="dev"):
    return root / ".deployctl" / env / "plan"


def plan_ok(root, *args):
    run = run_cli(root, "plan", *args)
    assert run.code == 0, run.err
    return run


def test_plan_saves_a_bundle_and_apply_uses_exactly_it(project, recorder):
    run = plan_ok(project, "--env", "dev", "--json")
    result = json.loads(run.out)["result"]
    assert result["gates"]["source"]["passed"] and result["gates"]["plan"]["passed"]
    assert result["account_guard"] == {"checked": False, "reason": "the root uses no AWS provider"}
    assert "account guard skipped" in run.err
    b = bundle_dir(project)
    assert {p.name for p in b.iterdir()} >= {"tfplan", "plan.json", "policy.json", "policy.junit.xml", "summary.json",
                                              "fingerprint.json", "bundle.json"}
    # the plan JSON is secret: owner-only, and its sensitive values never reach the output
    assert stat.S_IMODE((b / "plan.json").stat().st_mode) == 0o600
    assert "placeholder-fixture-dev" in (b / "plan.json").read_text()
    assert "placeholder-fixture-dev" not in run.out + run.err
    inputs = json.loads((b / "fingerprint.json").read_text())
    assert {"terraform/modules/kms/main.tf", "terraform/envs/dev/main.tf", "terraform/envs/dev/deployctl.auto.tfvars.json",
            "terraform/envs/dev/artifacts.json", "terraform/envs/defaults.toml"} <= set(inputs)
    assert inputs["terraform-version"] == "terraform 1.0.3"
    assert not any(k.endswith(".terraform.lock.hcl") or "/.terraform/" in k for k in inputs)
    # order of the pipeline: init, plan -out, show -json, then checkov on the plan JSON
    names = [os.path.basename(c[0]) + ":" + (c[1] if len(c) > 1 else "") for c in recorder.calls]
    plan_at = names.index("terraform:plan")
    assert names.index("terraform:init") < plan_at < names.index("terraform:show")
    # a provider-free plan holds no resources: the plan gate passes without starting checkov
    # (checkov on real plan JSON: tests/test_gate.py::test_plan_gate_on_a_recorded_plan)
    assert not [c for c in recorder.calls if "terraform_plan" in c]
    policy = json.loads((b / "policy.json").read_text())
    assert policy["plan"]["passed"] and "(no resources: not scanned)" in policy["plan"]["targets"]
    plan_call = recorder.terraform("plan")[0]
    assert "-input=false" in plan_call and f"-out={b / 'tfplan'}" in plan_call
    assert not any(a.startswith("-backend-config") for a in recorder.terraform("init")[0])  # local backend fixture

    run = run_cli(project, "apply", "--env", "dev", "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)["result"]
    assert result["outputs"]["prefix"]["value"] == "fixture-dev"
    assert result["outputs"]["log_retention_days"]["value"] == 3
    assert result["outputs"]["api_token_placeholder"]["value"] == "(sensitive)"
    assert "placeholder-fixture-dev" not in run.out + run.err
    (apply_call,) = recorder.terraform("apply")
    # apply takes an owner-only private copy of the bundle's tfplan (never the bundle's file, which
    # anyone who can write the bundle could swap after the checks), derives from it, applies it
    assert apply_call[1:5] == ["apply", "-input=false", "-no-color", "-lock-timeout=0s"]
    copy = apply_call[5]
    assert os.path.dirname(os.path.dirname(copy)) == str(project / ".deployctl" / "dev") and copy.endswith("/tfplan")
    assert os.path.basename(os.path.dirname(copy)).startswith(".apply-") and not os.path.exists(os.path.dirname(copy))
    assert ["show", "-json", "-no-color", copy] == recorder.terraform("show")[-1][1:]

    run = run_cli(project, "outputs", "--env", "dev")
    assert run.code == 0 and "fixture-dev" in run.out and "(sensitive)" in run.out
    # a bundle is consumed by apply
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4 and "already applied" in run.err and "deployctl plan" in run.err


def test_stale_failed_or_tampered_bundles_are_refused(project, recorder):
    plan_ok(project, "--env", "dev")
    b = bundle_dir(project)
    module = project / "terraform/modules/kms/main.tf"
    original = module.read_text()
    module.write_text(original + "\n# changed after the plan\n")
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4
    assert "stale: terraform/modules/kms/main.tf changed" in run.err and "run deployctl plan" in run.err
    module.write_text(original)

    meta = json.loads((b / "bundle.json").read_text())
    failed = json.loads(json.dumps(meta))
    failed["gates"]["plan"]["passed"] = False
    (b / "bundle.json").write_text(json.dumps(failed))
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4 and "did not pass the plan policy gate" in run.err
    (b / "bundle.json").write_text(json.dumps(meta))

    planfile = b / "tfplan"
    data = planfile.read_bytes()
    planfile.write_bytes(data + b"\0")
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4 and "modified" in run.err
    planfile.write_bytes(data)
    assert recorder.terraform("apply") == []  # nothing was applied while refusing

    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 0, run.err


def test_changed_config_refuses_apply_and_ctrl_c_consumes_the_plan(project, recorder):
    plan_ok(project, "--env", "dev")
    env_toml = project / "terraform/envs/dev/env.toml"
    original = env_toml.read_text()
    env_toml.write_text(original.replace("retention_days = 3", "retention_days = 5"))
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4
    assert "terraform/envs/dev/deployctl.auto.tfvars.json changed" in run.err
    assert "terraform/envs/dev/env.toml changed" in run.err
    env_toml.write_text(original)

    recorder.interrupt = "apply"
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 130
    assert "terraform got the signal" in run.err and "deployctl plan" in run.err
    applied = json.loads((bundle_dir(project) / "applied.json").read_text())
    assert applied["status"] == "interrupted"
    recorder.interrupt = None
    run = run_cli(project, "apply", "--env", "dev")
    assert run.code == 4 and "already applied" in run.err


def test_prod_needs_yes_and_foundation_plans_are_targeted(project, recorder, monkeypatch):
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # not a terminal
    plan_ok(project, "--env", "prod", "--foundation")
    assert {"-target=module.kms", "-target=module.artifact_bucket", "-target=module.ci_identity"} <= set(
        recorder.terraform("plan")[0]
    )
    meta = json.loads((bundle_dir(project, "prod") / "bundle.json").read_text())
    assert meta["foundation"] and meta["targets"] == ["module.kms", "module.iam_boundary", "module.artifact_bucket",
                                                      "module.ci_identity"]

    run = run_cli(project, "apply", "--env", "prod")
    assert run.code == 4 and "needs confirmation" in run.err and "--yes" in run.err
    assert "Plan: no changes." in run.err  # the summary was shown
    assert recorder.terraform("apply") == []
    run = run_cli(project, "apply", "--env", "prod", "--yes")
    assert run.code == 0, run.err
    assert len(recorder.terraform("apply")) == 1


def test_wrong_account_is_refused_before_asking_to_confirm(project, recorder, aws_env, monkeypatch):
    from test_publish import use_account

    monkeypatch.setattr("sys.stdin", open(os.devnull))  # not a terminal
    plan_ok(project, "--env", "prod", "--foundation")
    meta_file = bundle_dir(project, "prod") / "bundle.json"
    meta = json.loads(meta_file.read_text())
    meta["uses_aws"] = True  # as if the root used the AWS provider (the fixture roots are provider-free)
    meta_file.write_text(json.dumps(meta))
    use_account(monkeypatch, "999999999999")
    recorder.calls.clear()
    run = run_cli(project, "apply", "--env", "prod")
    assert run.code == 4
    assert "account 999999999999" in run.err and "lives in account 123456789012" in run.err
    assert "needs confirmation" not in run.err and "Plan:" not in run.err  # nobody was asked
    assert recorder.terraform("init") == [] and recorder.terraform("apply") == []


def test_a_failing_plan_leaves_no_bundle(project):
    run = run_cli(project, "plan", "--env", "broken")
    assert run.code == 1
    assert "terraform plan failed: Invalid function argument" in run.err
    assert "main.tf line" in run.err
    assert not (bundle_dir(project, "broken") / "bundle.json").exists()
    run = run_cli(project, "apply", "--env", "broken")
    assert run.code == 4 and "no saved plan" in run.err


def test_terraform_too_old_or_missing_is_exit_3(project, tmp_path):
    env_toml = project / "terraform/envs/dev/env.toml"
    original = env_toml.read_text()
    env_toml.write_text(original + '\n[tools]\nterraform_min_version = "1.10"\n')
    try:
        run = run_cli(project, "plan", "--env", "dev")
        assert run.code == 3
        assert "terraform 1.0.3" in run.err and "too old: 1.10 or newer is needed" in run.err
        run = run_cli(project, "apply", "--env", "dev")
        assert run.code in (3, 4)
    finally:
        env_toml.write_text(original)
    run = run_cli(project, "--terraform-bin", str(tmp_path / "nope"), "plan", "--env", "dev", tools=False)
    assert run.code == 3 and "was not found" in run.err


def test_account_mismatch_is_refused_before_terraform_runs(project, recorder, aws_env):
    run = run_cli(project, "plan", "--env", "awsroot")
    assert run.code == 4
    assert "account 123456789012" in run.err and "lives in account 111111111111" in run.err
    assert [c[1] for c in recorder.calls if os.path.basename(c[0]) == "terraform"] == ["version"]
    assert not any("checkov" in os.path.basename(c[0]) for c in recorder.calls)


def test_a_plan_with_no_changes_does_not_point_at_apply(project):
    assert run_cli(project, "plan", "--env", "dev").code == 0
    assert run_cli(project, "apply", "--env", "dev").code == 0
    run = plan_ok(project, "--env", "dev")
    assert "Plan: no changes." in run.out
    assert "next: deployctl apply" not in run.out and "nothing to apply" in run.out
