"""terraform init only when what it depends on changed, and the source gate beside terraform.

The init tests run the real (test-only) terraform 1.0.3 on a small root: a ``local`` backend
configured through a ``-backend-config`` file, a local module, and a provider requirement
installed from a filesystem mirror (init installs a provider without running it, so the
mirror holds a stand-in executable: the registry is an edge these tests cannot reach).
Every ``init`` is counted through a recording runner.

The pipeline tests run ``deployctl plan`` on the provider-free fixture project: the second
plan of the same tree runs no init; a failed source gate (a module no env calls, which checkov
scans and terraform never loads) leaves no bundle and no tfplan; terraform failing, or Ctrl-C,
while checkov still runs leaves no checkov process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from deployctl import runner
from deployctl.config import Settings, load_env
from deployctl.errors import Interrupted, OperationFailed
from deployctl.infra import tfinit
from deployctl.infra.terraform import Terraform
from tf_helpers import TERRAFORM, copy_project, run_cli

pytestmark = pytest.mark.slow

BAD_MODULE = '''resource "aws_sqs_queue" "unencrypted" {
  name                    = "q"
  sqs_managed_sse_enabled = false
}
'''


class Recording(runner.Runner):
    """The real runner, recording every command; optionally interrupting one terraform subcommand."""

    def __init__(self, interrupt: str | None = None, plan_after: Path | None = None):
        super().__init__()
        self.calls: list[list[str]] = []
        self.interrupt = interrupt
        self.plan_after = plan_after  # terraform plan waits until this file exists (checkov has started)

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.plan_after is not None and argv[1:2] == ["plan"]:
            _pid(self.plan_after)
        if self.interrupt and os.path.basename(argv[0]) == "terraform" and argv[1:2] == [self.interrupt]:
            raise Interrupted(f"interrupted; {os.path.basename(argv[0])} was stopped and has exited")
        return super().run(argv, **kwargs)

    def count(self, sub: str) -> int:
        return sum(1 for c in self.calls if os.path.basename(c[0]) == "terraform" and c[1:2] == [sub])


@pytest.fixture
def recorder():
    rec = Recording()
    previous = runner.set_runner(rec)
    yield rec
    runner.set_runner(previous)


# -- when init runs -------------------------------------------------------------------------------


@pytest.fixture
def small_root(tmp_path, monkeypatch):
    """A root with a local backend (configured by backend.hcl), a local module and a mirrored provider."""
    mirror = tmp_path / "mirror/registry.terraform.io/example/fake/1.0.0/linux_amd64"
    mirror.mkdir(parents=True)
    stand_in = mirror / "terraform-provider-fake_v1.0.0"
    stand_in.write_text("#!/bin/sh\nexit 1\n")
    stand_in.chmod(0o755)
    (tmp_path / "cli.rc").write_text(
        'provider_installation {\n  filesystem_mirror {\n'
        f'    path    = "{tmp_path / "mirror"}"\n    include = ["example/*"]\n  }}\n'
        '  direct {\n    exclude = ["example/*"]\n  }\n}\n')
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "cli.rc"))
    monkeypatch.delenv("TF_PLUGIN_CACHE_DIR", raising=False)
    monkeypatch.delenv("TF_DATA_DIR", raising=False)
    root = tmp_path / "root"
    (root / "mods" / "a").mkdir(parents=True)
    (root / "mods" / "a" / "main.tf").write_text('output "x" {\n  value = 1\n}\n')
    shutil.copytree(root / "mods" / "a", root / "mods" / "b")
    (root / "versions.tf").write_text(
        'terraform {\n  backend "local" {}\n  required_providers {\n'
        '    fake = {\n      source  = "example/fake"\n      version = ">= 1.0"\n    }\n  }\n}\n')
    (root / "main.tf").write_text('module "m" {\n  source = "./mods/a"\n}\n')
    (root / "backend.hcl").write_text('path = "state-a.tfstate"\n')
    cfg = load_env("dev", copy_project("project", tmp_path))
    return root, Terraform(cfg, Settings(terraform_bin=str(TERRAFORM)), workdir=root)


def test_init_runs_again_only_when_what_it_depends_on_changed(small_root, recorder, tmp_path, monkeypatch):
    root, tf = small_root
    record = tmp_path / "work" / "terraform-init.json"
    backend = root / "backend.hcl"

    def ensure() -> bool:
        """What pipeline.ensure_init does: init (and record) unless the record is current."""
        if tf.init_current(backend, record):
            return False
        tf.init_and_record(backend, record)
        return True

    assert ensure() and (root / ".terraform.lock.hcl").is_file() and record.is_file()
    assert not ensure() and not ensure()  # the same tree: no init
    assert recorder.count("init") == 1
    # the record holds a digest only: no path, no value of the tree
    assert set(json.loads(record.read_text())) == {"version", "digest"}

    def changed(edit) -> None:
        edit()
        assert ensure(), edit.__doc__
        assert not ensure(), edit.__doc__

    def lock_file():
        """the lock file"""
        lock = root / ".terraform.lock.hcl"
        lock.write_text(lock.read_text() + "\n# edited\n")

    def module_source():
        """a module source"""
        (root / "main.tf").write_text('module "m" {\n  source = "./mods/b"\n}\n')

    def module_file():
        """a file of a module the root calls (a module call or a requirement of its own could be there)"""
        (root / "mods" / "b" / "versions.tf").write_text('terraform {\n  required_version = ">= 1.0"\n}\n')

    def provider_requirement():
        """the provider requirements"""
        text = (root / "versions.tf").read_text()
        (root / "versions.tf").write_text(text.replace('">= 1.0"', '"~> 1.0"'))

    def plugin_cache():
        """terraform's configuration environment (the plugin cache)"""
        (tmp_path / "plugin-cache").mkdir()
        monkeypatch.setenv("TF_PLUGIN_CACHE_DIR", str(tmp_path / "plugin-cache"))

    def cli_config():
        """the CLI config file's bytes"""
        (tmp_path / "cli.rc").write_text((tmp_path / "cli.rc").read_text() + "\n# edited\n")

    # another backend config: init runs, and terraform itself refuses to switch silently
    backend.write_text('path = "state-b.tfstate"\n')
    assert not tf.init_current(backend, record)
    with pytest.raises(OperationFailed, match="Backend configuration changed"):
        tf.init_and_record(backend, record)
    backend.write_text('path = "state-a.tfstate"\n')  # back: the failed init recorded nothing, so init again
    assert ensure() and not ensure()

    for edit in (lock_file, module_source, module_file, provider_requirement, plugin_cache, cli_config):
        changed(edit)
    assert recorder.count("init") == 9
    assert "-backend-config=" + str(backend) in [c for c in recorder.calls if c[1:2] == ["init"]][-1]


def test_a_planted_or_rewritten_terraform_dir_is_initialised_again(small_root, recorder, tmp_path):
    """Attack: a .terraform/ (and a record beside it) that init did not write here, e.g. committed by a
    PR with a backend of its own, must never let plan skip init: it is bound to the files init wrote."""
    root, tf = small_root
    record = tmp_path / "work" / "terraform-init.json"
    backend = root / "backend.hcl"
    tf.init_and_record(backend, record)
    assert tf.init_current(backend, record)
    saved = record.read_bytes()

    # the same bytes, written again in place (a checkout, a copy, an edit): not what init left
    modules_json = root / ".terraform" / "modules" / "modules.json"
    time.sleep(0.01)
    modules_json.write_bytes(modules_json.read_bytes())
    assert not tf.init_current(backend, record)
    tf.init_and_record(backend, record)

    # the backend record terraform keeps, pointing at another state: even with the old record restored
    state = root / ".terraform" / "terraform.tfstate"
    doc = json.loads(state.read_text())
    doc["backend"]["config"]["path"] = "elsewhere.tfstate"
    state.write_text(json.dumps(doc))
    record.write_bytes(saved)
    assert not tf.init_current(backend, record)
    with pytest.raises(OperationFailed, match="Backend configuration changed"):  # terraform refuses the switch
        tf.init_and_record(backend, record)

    # a whole copy of .terraform (what a checkout that commits it produces), and no .terraform at all
    shutil.rmtree(root / ".terraform")
    tf.init_and_record(backend, record)
    assert tf.init_current(backend, record)
    shutil.copytree(root / ".terraform", tmp_path / "planted")
    shutil.rmtree(root / ".terraform")
    assert not tf.init_current(backend, record)
    shutil.copytree(tmp_path / "planted", root / ".terraform")
    assert not tf.init_current(backend, record)


def test_a_failed_init_records_nothing(small_root, recorder, tmp_path):
    root, tf = small_root
    record = tmp_path / "work" / "terraform-init.json"
    backend = root / "backend.hcl"
    tf.init_and_record(backend, record)
    (root / "main.tf").write_text('module "m" {\n  source = "./mods/missing"\n}\n')
    for _ in range(2):  # failed, so tried again the next time
        assert not tf.init_current(backend, record)
        with pytest.raises(OperationFailed):
            tf.init_and_record(backend, record)
        assert not record.exists() and tfinit.recorded(record) is None
    assert recorder.count("init") == 3


# -- the pipeline ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project("project", tmp_path_factory.mktemp("tfinit-pipeline"))


def bundle_dir(root, env="dev"):
    return root / ".deployctl" / env / "plan"


def test_a_second_plan_of_the_same_tree_runs_no_init_and_the_gate_lines_keep_their_order(project, recorder):
    first = run_cli(project, "plan", "--env", "dev")
    assert first.code == 0, first.err
    second = run_cli(project, "plan", "--env", "dev")
    assert second.code == 0, second.err
    assert recorder.count("init") == 1 and recorder.count("plan") == 2 and recorder.count("show") == 2
    assert "init (skipped: nothing it depends on changed)" in second.err
    lines = [ln for ln in second.err.splitlines() if ln.startswith(("==> ", "source gate:"))]
    order = [next(i for i, ln in enumerate(lines) if ln.startswith(p))
             for p in ("==> checkov on terraform/modules", "==> terraform 1.0.3: init", "==> plan", "source gate: passed",
                       "==> checkov on the plan JSON")]
    assert order == sorted(order), lines


def test_a_plan_with_no_changes_carries_the_outputs_terraform_output_reads(project, recorder):
    """up takes the stack's outputs from such a plan instead of running `terraform output -json`."""
    import io

    from deployctl.infra import pipeline
    from deployctl.ui import UI
    from tf_helpers import CHECKOV

    assert run_cli(project, "apply", "--env", "dev").code == 0  # the bundle of the test before
    cfg = load_env("dev", project)
    settings = Settings(terraform_bin=str(TERRAFORM), checkov_bin=str(CHECKOV))
    outcome = pipeline.run_plan(settings, cfg, UI(err=io.StringIO()))
    assert not outcome.summary["has_changes"]
    assert recorder.count("output") == 1  # apply's own
    read = pipeline.read_outputs(Terraform(cfg, settings))
    assert {k: v["value"] for k, v in outcome.outputs.items()} == {k: v["value"] for k, v in read.items()}
    assert {k: v["sensitive"] for k, v in outcome.outputs.items()} == {k: v["sensitive"] for k, v in read.items()}
    assert outcome.outputs["api_token_placeholder"]["value"] == "(sensitive)"
    assert "outputs" not in outcome.as_dict()


def test_a_failed_source_gate_beside_terraform_leaves_no_bundle_and_no_tfplan(project, recorder):
    bad = project / "terraform/modules/unused_queue"
    bad.mkdir()
    (bad / "main.tf").write_text(BAD_MODULE)  # checkov scans it; no env calls it, so terraform plans fine
    try:
        run = run_cli(project, "plan", "--env", "dev")
    finally:
        shutil.rmtree(bad)
    assert run.code == 1
    assert "the policy gate failed on the source: 1 blocking finding(s) (CKV_AWS_27)" in run.err
    b = bundle_dir(project)
    assert not (b / "bundle.json").exists() and not (b / "tfplan").exists() and not (b / "plan.json").exists()
    policy = json.loads((b / "policy.json").read_text())
    assert set(policy) == {"source"} and not policy["source"]["passed"]
    assert (b / "policy.junit.xml").is_file()
    assert recorder.count("apply") == 0
    assert run_cli(project, "apply", "--env", "dev").code == 4


def _slow_checkov(tmp_path: Path) -> tuple[Path, Path]:
    """A checkov stand-in that never finishes, with a child of its own as checkov's forked workers are
    (it records both pids): checkov still running when terraform fails or is interrupted. Nothing else
    of checkov matters for these tests."""
    pidfile = tmp_path / "checkov.pid"
    script = tmp_path / "slow-checkov"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}.child\necho $$ > {pidfile}\nexec sleep 300\n")
    script.chmod(0o755)
    return script, pidfile


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pid(pidfile: Path) -> int:
    deadline = time.monotonic() + 10
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the checkov stand-in never started"
        time.sleep(0.05)
    return int(pidfile.read_text())


@pytest.mark.parametrize("how", ["terraform fails", "ctrl-c"])
def test_terraform_failing_or_interrupted_while_checkov_runs_leaves_no_checkov(project, tmp_path, how):
    checkov, pidfile = _slow_checkov(tmp_path)
    rec = Recording(interrupt="plan" if how == "ctrl-c" else None, plan_after=pidfile)
    previous = runner.set_runner(rec)
    try:
        # the stand-in must be asked, not served from the source cache
        shutil.rmtree(project / ".deployctl" / "broken" / "cache", ignore_errors=True)
        shutil.rmtree(project / ".deployctl" / "dev" / "cache", ignore_errors=True)
        env = "broken" if how == "terraform fails" else "dev"
        started = time.monotonic()
        run = run_cli(project, "--terraform-bin", str(TERRAFORM), "--checkov-bin", str(checkov), "plan", "--env", env,
                      tools=False)
    finally:
        runner.set_runner(previous)
    assert time.monotonic() - started < 60  # not waiting for checkov's 300 s
    if how == "terraform fails":
        assert run.code == 1 and "terraform plan failed: Invalid function argument" in run.err
    else:
        assert run.code == 130
    pid = _pid(pidfile)
    with pytest.raises(ProcessLookupError):  # stopped and waited for, before deployctl returned
        os.kill(pid, 0)
    child = int(Path(f"{pidfile}.child").read_text())
    deadline = time.monotonic() + 5  # killed with its group; gone once init (its new parent) reaps it
    while _alive(child):
        assert time.monotonic() < deadline, f"checkov's child {child} outlived it"
        time.sleep(0.05)
    assert not (bundle_dir(project, env) / "bundle.json").exists()
    assert not (bundle_dir(project, env) / "tfplan").exists()
