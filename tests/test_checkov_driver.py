"""checkov started ahead of its job (deployctl/infra/checkov_driver.py, gate.CheckovDriver).

The same recorded plan is judged once by a plain checkov and once by a driver started before
(one real checkov run each): same findings, byte for byte. Every other test costs no scan: a
driver that cannot give a report makes the plan gate run checkov plainly (a spy stops that run),
and a plan that fails in terraform or is interrupted leaves no driver process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from deployctl import runner
from deployctl.errors import Interrupted
from deployctl.infra import gate, pipeline
from tf_helpers import CHECKOV, FIXTURES, TERRAFORM, copy_project, run_cli

pytestmark = pytest.mark.slow

PLAN = FIXTURES / "plans" / "dev_create_kms_key_unknown.json"
POLICY = '[[waiver]]\ncheck = "CKV_AWS_117"\nreason = "skipped inline in the real module"\n'


class Scanned(Exception):
    """a plain checkov was about to scan"""


class Spy(runner.Runner):
    """The real runner, recording every command; with ``stop``, a plain checkov scan raises Scanned."""

    def __init__(self, stop: bool = False, interrupt: str | None = None):
        super().__init__()
        self.stop, self.interrupt = stop, interrupt
        self.calls: list[list[str]] = []

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.stop and "-f" in argv:
            raise Scanned(argv)
        if self.interrupt and os.path.basename(argv[0]) == "terraform" and argv[1:2] == [self.interrupt]:
            raise Interrupted(f"interrupted; {os.path.basename(argv[0])} was stopped and has exited")
        return super().run(argv, **kwargs)


@pytest.fixture
def spy(request):
    rec = Spy(**getattr(request, "param", {}))
    previous = runner.set_runner(rec)
    yield rec
    runner.set_runner(previous)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A tiny project (env root calling a KMS module, a waiver) holding the recorded plan."""
    root = tmp_path_factory.mktemp("driver") / "p"
    (root / "policy").mkdir(parents=True)
    (root / "policy" / "gate.toml").write_text(POLICY)
    (root / "terraform" / "envs" / "dev").mkdir(parents=True)
    (root / "terraform" / "envs" / "dev" / "main.tf").write_text('module "kms" {\n  source = "../../modules/kms"\n}\n')
    (root / "terraform" / "modules" / "kms").mkdir(parents=True)
    (root / "terraform" / "modules" / "kms" / "main.tf").write_text(
        'resource "aws_kms_key" "this" {\n  enable_key_rotation = true\n}\n')
    plan_json = root / ".deployctl" / "dev" / "plan" / "plan.json"
    plan_json.parent.mkdir(parents=True)
    shutil.copyfile(PLAN, plan_json)
    return root


def scan(root, driver=None, cache_dir=None, doc=None) -> gate.GateResult:
    plan_json = root / ".deployctl" / "dev" / "plan" / "plan.json"
    return gate.scan_plan(root, plan_json, checkov=str(CHECKOV), source_dir=root / "terraform" / "envs" / "dev",
                          cache_dir=cache_dir, driver=driver, doc=doc)


def gone(pid: int) -> bool:
    """The driver's process group has ended (it led one of its own)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture(scope="module")
def plain(root):
    """A driver started, then the plain scan (caching its findings) while the driver imports checkov."""
    driver = gate.CheckovDriver.start(str(CHECKOV), cwd=root)
    rec = Spy()
    previous = runner.set_runner(rec)
    try:
        result = scan(root, cache_dir=root / "cache")
    finally:
        runner.set_runner(previous)
    assert [c for c in rec.calls if "-f" in c], "the plain scan ran checkov itself"
    yield result, driver
    if driver is not None:
        driver.stop()


def test_a_driver_gives_the_findings_of_a_plain_checkov_byte_for_byte(root, plain, spy):
    plain, driver = plain
    assert driver is not None
    warm = scan(root, driver)
    assert spy.calls == []  # the driver judged it: no plain checkov ran
    assert gone(driver.pid)
    assert json.dumps(warm.as_dict(), sort_keys=True) == json.dumps(plain.as_dict(), sort_keys=True)
    assert gate.junit_xml([warm]) == gate.junit_xml([plain])
    assert not plain.passed and plain.unknown_key and {f.status for f in plain.findings} >= {"failed", "waived"}


@pytest.mark.parametrize("spy", [{"stop": True}], indirect=True)
@pytest.mark.parametrize("case", ["cache hit", "no resources"])
def test_a_gate_that_needs_no_scan_stops_the_driver_without_waiting_for_it(root, plain, spy, case):
    driver = gate.CheckovDriver.start(str(CHECKOV), cwd=root)
    assert driver is not None
    started = time.monotonic()
    if case == "cache hit":
        result = scan(root, driver, cache_dir=root / "cache")
        assert result.cached
    else:
        result = scan(root, driver, doc={"format_version": "1.2", "planned_values": {"root_module": {}}})
        assert result.passed and "(no resources: not scanned)" in result.targets
    assert gone(driver.pid) and time.monotonic() - started < 4  # stopped while importing: not waited for
    assert spy.calls == []


@pytest.mark.parametrize("spy", [{"stop": True}], indirect=True)
def test_a_driver_that_died_makes_the_gate_run_checkov_plainly(root, spy):
    driver = gate.CheckovDriver.start(str(CHECKOV), cwd=root)
    assert driver is not None
    os.killpg(driver.pid, 9)
    with pytest.raises(Scanned):
        scan(root, driver)
    assert gone(driver.pid)


@pytest.mark.parametrize("spy", [{"stop": True}], indirect=True)
def test_a_python_that_prints_nothing_makes_the_gate_run_checkov_plainly(root, spy, tmp_path):
    # checkov's console script, its shebang naming a "python" that exits at once without a word
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    script = tmp_path / "checkov"
    script.write_text(f"#!{python}\n" + "\n".join(CHECKOV.read_text().splitlines()[1:]) + "\n")
    script.chmod(0o755)
    driver = gate.CheckovDriver.start(str(script), cwd=root)
    assert driver is not None
    assert driver.scan(["-f", "x.json"]) is None
    with pytest.raises(Scanned):
        scan(root, gate.CheckovDriver.start(str(script), cwd=root))


@pytest.mark.parametrize("body", [
    "#!/bin/sh\nexec {checkov} \"$@\"\n",                                          # a wrapper
    "#!{python} -E\nfrom checkov.main import Checkov\nimport sys\nsys.exit(Checkov().run())\n",  # options
    "#!{python}\nfrom checkov.main import run\nimport sys\nsys.exit(run())\n",       # another entry
])
def test_anything_but_checkovs_own_console_script_gets_no_driver(tmp_path, body):
    python = CHECKOV.read_text().splitlines()[0][2:]
    script = tmp_path / "checkov"
    script.write_text(body.format(checkov=CHECKOV, python=python))
    script.chmod(0o755)
    assert gate.CheckovDriver.start(str(script), cwd=tmp_path) is None
    assert gate.CheckovDriver.start(str(tmp_path / "missing"), cwd=tmp_path) is None


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project("project", tmp_path_factory.mktemp("driver-pipeline"))


@pytest.mark.parametrize("spy", [{"interrupt": "plan"}, {}], ids=["ctrl-c", "terraform fails"], indirect=True)
def test_no_driver_outlives_a_plan_that_fails_in_terraform_or_is_interrupted(project, spy, monkeypatch):
    started: list[gate.CheckovDriver] = []
    real_start = gate.CheckovDriver.start

    def start(*args, **kwargs):
        driver = real_start(*args, **kwargs)
        started.append(driver)
        return driver

    monkeypatch.setattr(gate.CheckovDriver, "start", start)
    monkeypatch.setattr(pipeline, "_plan_may_differ", lambda cfg: True)  # the fixture roots use no AWS
    env = "dev" if spy.interrupt else "broken"
    run = run_cli(project, "--terraform-bin", str(TERRAFORM), "--checkov-bin", str(CHECKOV), "plan", "--env", env,
                  tools=False)
    assert run.code == (130 if spy.interrupt else 1), run.err
    assert len(started) == 1 and started[0] is not None
    assert gone(started[0].pid)  # stopped with its group before deployctl returned
    assert not (project / ".deployctl" / env / "plan" / "bundle.json").exists()


def test_checkov_starts_early_only_when_the_plan_may_differ(project, monkeypatch):
    from deployctl.config import load_env
    from deployctl.infra import plan as plan_mod

    cfg = load_env("dev", project)
    assert not pipeline._plan_may_differ(cfg)  # the fixture roots use no AWS: nothing worth judging
    monkeypatch.setattr(pipeline, "uses_aws", lambda env_dir: True)
    bundle = plan_mod.Bundle.for_env(cfg)
    bundle.reset()
    assert pipeline._plan_may_differ(cfg)  # no previous plan
    bundle.write_json(plan_mod.FINGERPRINT_JSON, plan_mod.fingerprint_inputs(cfg, "terraform 1.0.3"))
    assert not pipeline._plan_may_differ(cfg)  # nothing changed since: its verdict is likely cached
    main_tf = cfg.env_dir / "main.tf"
    original = main_tf.read_bytes()
    main_tf.write_bytes(original + b"\n# one line\n")
    try:
        assert pipeline._plan_may_differ(cfg)  # an HCL change
    finally:
        main_tf.write_bytes(original)
    assert not pipeline._plan_may_differ(cfg)
    bundle.write_json(plan_mod.APPLIED_JSON, {"status": "applied"})
    assert pipeline._plan_may_differ(cfg)  # applied: the state moved
