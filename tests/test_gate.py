"""The checkov policy gate, with the real checkov on fixture modules with known findings.

checkov runs twice in this module (the source tree once, a recorded plan once);
every other test reuses the cached source scan, re-evaluated against a new gate file.
"""

from __future__ import annotations

import json
import shutil
from xml.etree import ElementTree as ET

import pytest

from deployctl import runner
from deployctl.errors import ConfigError
from deployctl.infra import gate
from tf_helpers import CHECKOV, FIXTURES, copy_project, run_cli

pytestmark = pytest.mark.slow

KNOWN_FAILURES = {"CKV_AWS_66", "CKV_AWS_158", "CKV_AWS_338"}


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """The checkov fixture project after one real `deployctl check` (its result and the cache)."""
    root = copy_project("checkov", tmp_path_factory.mktemp("gate"))
    return root, run_cli(root, "check", "--json")


def write_gate(root, text):
    (root / "policy").mkdir(exist_ok=True)
    (root / "policy" / "gate.toml").write_text(text)


def test_gate_fails_with_the_known_check_ids(gated):
    root, run = gated
    assert run.code == 1
    result = json.loads(run.out)["result"]
    assert not result["passed"] and not result["cached"]
    failed = {f["check_id"] for f in result["findings"] if f["status"] == "failed"}
    assert failed == KNOWN_FAILURES
    f = next(f for f in result["findings"] if f["check_id"] == "CKV_AWS_66")
    assert f["resource"] == "aws_cloudwatch_log_group.app"
    assert f["location"] == "terraform/modules/logs/main.tf:5"
    assert "retention" in f["fix"].lower()
    # inline skips: with a reason it is reported, without one it blocks
    skips = {(f["resource"], f["status"]) for f in result["findings"] if f["check_id"] == "CKV_AWS_27"}
    assert skips == {("aws_sqs_queue.dlq", "skipped"), ("aws_sqs_queue.events", "bad_skip")}
    assert "blocking finding(s)" in run.err


def test_junit_report_lists_the_failures(gated):
    root, _ = gated
    suites = ET.parse(root / ".deployctl" / "check.junit.xml").getroot()
    suite = suites.find("testsuite")
    assert suite.get("failures") == "4"
    failed_ids = {c.get("classname") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed_ids == KNOWN_FAILURES | {"CKV_AWS_27"}


def test_waivers_with_reasons_pass_without_a_rescan(gated):
    root, _ = gated
    write_gate(root, "\n".join(
        f'[[waiver]]\ncheck = "{cid}"\nresources = ["aws_cloudwatch_log_group.*"]\nreason = "fixture: {cid} is accepted"\n'
        for cid in sorted(KNOWN_FAILURES)
    ))
    # the inline skip without a reason still blocks: no waiver covers that
    run = run_cli(root, "check", "--json")
    assert run.code == 1
    result = json.loads(run.out)["result"]
    assert result["cached"]  # the same files: checkov's findings came from the cache
    assert {f["check_id"] for f in result["findings"] if f["status"] == "waived"} == KNOWN_FAILURES
    assert {f["check_id"] for f in result["findings"] if f["status"] in {"failed", "bad_skip"}} == {"CKV_AWS_27"}
    waived = next(f for f in result["findings"] if f["status"] == "waived")
    assert waived["reason"].startswith("fixture: ")


def _raw(root):
    cache = next((root / ".deployctl" / "cache").glob("checkov-*.json"))
    data = json.loads(cache.read_text())
    reasoned = [f for f in gate._findings(data["skipped"]) if f.reason.lower() not in {"", "no comment provided"}]
    return gate._findings(data["failed"]), reasoned


def test_hard_fail_list_turns_other_failures_into_warnings(gated):
    root, _ = gated
    write_gate(root, 'hard_fail = ["CKV_AWS_66"]\n')
    failed, skipped = _raw(root)
    res = gate.evaluate("source", ["terraform"], failed, skipped, gate.load_gate(root))
    assert {f.check_id for f in res.findings if f.status == "failed"} == {"CKV_AWS_66"}
    assert {f.check_id for f in res.findings if f.status == "warning"} == {"CKV_AWS_158", "CKV_AWS_338"}
    assert not res.passed
    write_gate(root, 'hard_fail = ["CKV_AWS_9*"]\n')
    res = gate.evaluate("source", ["terraform"], *_raw(root), gate.load_gate(root))
    assert res.passed and res.counts["warning"] == 3


def test_waiver_without_reason_is_a_config_error(gated):
    root, _ = gated
    write_gate(root, '[[waiver]]\ncheck = "CKV_AWS_66"\n')
    run = run_cli(root, "check")
    assert run.code == 2
    assert "waiver of CKV_AWS_66 (waiver[0]) has no reason" in run.err
    assert "policy/gate.toml" in run.err
    write_gate(root, '[[waiver]]\ncheck = "CKV_AWS_66"\nreason = "   "\n')
    with pytest.raises(ConfigError):
        gate.load_gate(root)
    write_gate(root, '[[waiver]]\ncheck = "CKV_AWS_66"\nreason = "ok"\nexpires = "never"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        gate.load_gate(root)


def test_waivers_and_reasoned_skips_pass_and_a_changed_file_is_rescanned(gated, tmp_path):
    src, _ = gated
    root = tmp_path / "copy"
    shutil.copytree(src, root)
    write_gate(root, "\n".join(
        f'[[waiver]]\ncheck = "{cid}"\nreason = "fixture: {cid} is accepted"\n' for cid in sorted(KNOWN_FAILURES)
    ))
    main_tf = root / "terraform/modules/logs/main.tf"
    main_tf.write_text(main_tf.read_text().replace("#checkov:skip=CKV_AWS_27\n", "#checkov:skip=CKV_AWS_27:ids only\n"))
    run = run_cli(root, "check", "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)["result"]
    assert result["passed"] and not result["cached"]  # the files changed: checkov ran again
    assert result["counts"] == {"failed": 0, "bad_skip": 0, "warning": 0, "waived": 3, "skipped": 2}
    run = run_cli(root, "check")
    assert run.code == 0 and "(cached): passed" in run.out


def test_plan_gate_on_a_recorded_plan(tmp_path, monkeypatch):
    """checkov on `terraform show -json` output: an unencrypted table without PITR fails."""
    calls = []
    real_run = runner.run
    monkeypatch.setattr(runner, "run", lambda argv, **kw: calls.append([str(a) for a in argv]) or real_run(argv, **kw))
    plan_json = tmp_path / "plan.json"
    shutil.copyfile(FIXTURES / "plans" / "dev_create_unprotected.json", plan_json)
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "gate.toml").write_text(
        '[[waiver]]\ncheck = "CKV2_AWS_62"\nresources = ["aws_s3_bucket.uploads"]\nreason = "no event consumers"\n'
    )
    res = gate.scan_plan(tmp_path, plan_json, checkov=str(CHECKOV))
    assert not res.passed
    failed = {(f.check_id, f.resource) for f in res.findings if f.status == "failed"}
    assert ("CKV_AWS_28", "aws_dynamodb_table.items") in failed  # point-in-time recovery
    assert ("CKV_AWS_119", "aws_dynamodb_table.items") in failed  # customer-managed KMS key
    assert ("CKV_AWS_18", "aws_s3_bucket.uploads") in failed  # access logging
    assert {f.check_id for f in res.findings if f.status == "waived"} == {"CKV2_AWS_62"}
    (argv,) = calls
    assert argv[1:7] == ["-f", str(plan_json), "--framework", "terraform_plan", "--repo-root-for-plan-enrichment", str(tmp_path)]
    assert "--skip-download" in argv


def test_plan_without_resources_is_not_scanned(tmp_path):
    plan_json = tmp_path / "plan.json"
    shutil.copyfile(FIXTURES / "plans" / "no_changes.json", plan_json)
    assert gate.plan_has_resources(json.loads(plan_json.read_text()))  # a no-op resource is still a resource
    plan_json.write_text(json.dumps({"planned_values": {"outputs": {}, "root_module": {}}, "output_changes": {}}))
    res = gate.scan_plan(tmp_path, plan_json, checkov=str(tmp_path / "no-checkov"))
    assert res.passed and res.findings == []


def test_missing_checkov_is_exit_3(tmp_path):
    root = copy_project("checkov", tmp_path)
    run = run_cli(root, "--checkov-bin", str(tmp_path / "no-checkov"), "check", tools=False)
    assert run.code == 3
    assert "checkov was not found" in run.err and "scripts/setup" in run.err


def test_checkov_output_with_several_documents_is_merged():
    doc = {"check_type": "terraform", "results": {"failed_checks": [
        {"check_id": "CKV_AWS_1", "check_name": "n", "resource": "r", "file_abs_path": "/x/a.tf", "file_line_range": [1, 2]}]}}
    text = json.dumps(doc) + "\n" + json.dumps([doc, {"passed": 0, "failed": 0}])
    failed, skipped = gate.collect(gate.parse_checkov_output(text), FIXTURES)
    assert [(f.check_id, f.resource, f.lines) for f in failed] == [("CKV_AWS_1", "r", [1, 2])]
    assert skipped == []


def _sqs_plan(address: str, module_call: str | None) -> dict:
    """A minimal `terraform show -json` document creating one SQS queue without a KMS key."""
    resource = {"address": address, "mode": "managed", "type": "aws_sqs_queue", "name": "dlq",
                "provider_name": "registry.terraform.io/hashicorp/aws", "schema_version": 0, "sensitive_values": {},
                "values": {"name": "q-dlq", "kms_master_key_id": None, "sqs_managed_sse_enabled": False}}
    planned = {"resources": [resource]}
    config_resource = {"address": "aws_sqs_queue.dlq", "mode": "managed", "type": "aws_sqs_queue", "name": "dlq",
                       "provider_config_key": "aws", "expressions": {"name": {"constant_value": "q-dlq"}},
                       "schema_version": 0}
    root_module: dict = {"resources": [config_resource]}
    if module_call:
        planned = {"child_modules": [{"address": f"module.{module_call}", "resources": [resource]}]}
        root_module = {"module_calls": {module_call: {"source": "../../modules/queue",
                                                      "module": {"resources": [config_resource]}}}}
    return {
        "format_version": "1.2", "terraform_version": "1.11.4", "applyable": True, "complete": True, "errored": False,
        "planned_values": {"root_module": planned},
        "resource_changes": [{"address": address, "mode": "managed", "type": "aws_sqs_queue", "name": "dlq",
                              "provider_name": "registry.terraform.io/hashicorp/aws",
                              "change": {"actions": ["create"], "before": None, "after": resource["values"],
                                         "after_unknown": {}, "before_sensitive": False, "after_sensitive": {}}}],
        "configuration": {"provider_config": {"aws": {"name": "aws", "full_name": "registry.terraform.io/hashicorp/aws"}},
                          "root_module": root_module},
    }


def test_a_fixture_skip_never_reaches_the_plan_gate_and_findings_name_the_tf_file(tmp_path):
    """checkov matches plan resources to source blocks by TYPE.NAME: enrichment reads only terraform/."""
    root = tmp_path / "project"
    module = root / "terraform" / "modules" / "queue"
    env_dir = root / "terraform" / "envs" / "dev"
    module.mkdir(parents=True)
    env_dir.mkdir(parents=True)
    (module / "main.tf").write_text('# the real queue: no skip\n\nresource "aws_sqs_queue" "dlq" {\n  name = "q-dlq"\n}\n')
    (env_dir / "main.tf").write_text('module "functions" {\n  source = "../../modules/queue"\n}\n')
    fixture = root / "tests" / "fixtures" / "tf" / "checkov"
    fixture.mkdir(parents=True)
    (fixture / "main.tf").write_text('resource "aws_sqs_queue" "dlq" {\n'
                                     '  #checkov:skip=CKV_AWS_27:a test fixture reason\n  name = "q-dlq"\n}\n')
    plan_json = root / ".deployctl" / "dev" / "plan" / "plan.json"
    plan_json.parent.mkdir(parents=True)
    address = 'module.functions["users"].aws_sqs_queue.dlq'
    plan_json.write_text(json.dumps(_sqs_plan(address, "functions")))
    res = gate.scan_plan(root, plan_json, checkov=str(CHECKOV), source_dir=env_dir)
    by_check = {f.check_id: f for f in res.findings}
    assert "CKV_AWS_27" in by_check, [(f.check_id, f.status) for f in res.findings]
    finding = by_check["CKV_AWS_27"]
    assert finding.status == "failed" and finding.reason != "a test fixture reason"
    assert not any(f.reason == "a test fixture reason" for f in res.findings)
    assert finding.file == "terraform/modules/queue/main.tf" and finding.lines == [3, 5]
    assert finding.location == "terraform/modules/queue/main.tf:3"
    # the same skip written in our own Terraform is honoured, with its file
    (module / "main.tf").write_text('resource "aws_sqs_queue" "dlq" {\n'
                                    '  #checkov:skip=CKV_AWS_27:our own reason\n  name = "q-dlq"\n}\n')
    res = gate.scan_plan(root, plan_json, checkov=str(CHECKOV), source_dir=env_dir)
    skipped = [f for f in res.findings if f.check_id == "CKV_AWS_27"]
    assert [(f.status, f.reason, f.file) for f in skipped] == [("skipped", "our own reason",
                                                                 "terraform/modules/queue/main.tf")]
