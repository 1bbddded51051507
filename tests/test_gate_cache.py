"""The gate verdict cache (deployctl/infra/gatecache.py), with the real checkov.

checkov runs on a recorded plan once (module fixture) and on the tiny provider-free project twice;
every other test proves a hit (no checkov) or a miss (checkov would start: the spy stops it there,
so a miss costs nothing) against the entries those scans made.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import sys

import pytest

from deployctl import runner
from deployctl.config import Settings, load_env
from deployctl.infra import gate, gatecache, pipeline
from deployctl.ui import UI
from tf_helpers import CHECKOV, FIXTURES, copy_project, run_cli

pytestmark = pytest.mark.slow

PLAN = FIXTURES / "plans" / "dev_create_kms_key_unknown.json"
# CKV_AWS_117/272 waived, the encryption failures explained by the unknown key: waived, failed and
# explained findings all in one scan
POLICY = ('[[waiver]]\ncheck = "CKV_AWS_117"\nreason = "skipped inline in the real module"\n'
          '[[waiver]]\ncheck = "CKV_AWS_272"\nreason = "skipped inline in the real module"\n')
ENV_MAIN = 'module "kms" {\n  source = "../../modules/kms"\n}\n'
KMS_MAIN = 'resource "aws_kms_key" "this" {\n  enable_key_rotation = true\n}\n'


class Scanned(Exception):
    """checkov was about to scan: the cache missed."""


class Spy(runner.Runner):
    """The real runner, recording every command; with ``stop``, a checkov scan raises Scanned instead."""

    def __init__(self, stop: bool):
        super().__init__()
        self.stop = stop
        self.calls: list[list[str]] = []

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.stop and ("-f" in argv or "-d" in argv):
            raise Scanned(argv)
        return super().run(argv, **kwargs)

    @property
    def scans(self) -> list[list[str]]:
        return [c for c in self.calls if "-f" in c or "-d" in c]


@pytest.fixture
def spy():
    rec = Spy(stop=True)
    previous = runner.set_runner(rec)
    yield rec
    runner.set_runner(previous)


def plan_doc(timestamp: str = "2026-01-01T10:00:00Z") -> dict:
    return json.loads(PLAN.read_text()) | {"timestamp": timestamp}


def scan(root, doc=None, checkov=CHECKOV, plan_json=None) -> gate.GateResult:
    plan_json = plan_json or root / ".deployctl" / "dev" / "plan" / "plan.json"
    return gate.scan_plan(root, plan_json, checkov=str(checkov), source_dir=root / "terraform" / "envs" / "dev",
                          doc=doc if doc is not None else plan_doc(), cache_dir=root / ".deployctl" / "dev" / "cache")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A project holding the recorded plan in its bundle dir, after one real plan gate (a miss)."""
    root = tmp_path_factory.mktemp("gcache") / "p"
    (root / "policy").mkdir(parents=True)
    (root / "policy" / "gate.toml").write_text(POLICY)
    (root / "terraform" / "envs" / "dev").mkdir(parents=True)
    (root / "terraform" / "envs" / "dev" / "main.tf").write_text(ENV_MAIN)
    (root / "terraform" / "modules" / "kms").mkdir(parents=True)
    (root / "terraform" / "modules" / "kms" / "main.tf").write_text(KMS_MAIN)
    plan_json = root / ".deployctl" / "dev" / "plan" / "plan.json"
    plan_json.parent.mkdir(parents=True)
    plan_json.write_text(json.dumps(plan_doc()))
    result = scan(root)
    assert not result.cached and result.unknown_key and not result.passed
    entries = list((root / ".deployctl" / "dev" / "cache").glob("checkov-plan-*.json"))
    assert len(entries) == 1
    return root, result, entries[0]


def comparable(result: gate.GateResult) -> tuple[str, str, list[str]]:
    d = result.as_dict()
    del d["cached"]
    lines = [line.replace(" (cached)", "") for line in gate.summary_lines(result)]
    return json.dumps(d, sort_keys=True), gate.junit_xml([result]), lines


def test_a_hit_gives_byte_identical_findings_and_the_same_unknown_key_explanation(first, spy):
    root, miss, entry = first
    hit = scan(root)
    assert hit.cached and spy.scans == []
    assert comparable(hit) == comparable(miss)
    assert hit.unknown_key == miss.unknown_key and hit.unknown_key["findings"] == 6
    assert {f.status for f in hit.findings} >= {"failed", "waived"}
    # the entry holds findings only, owner-only: no value of the plan (the KMS key's policy, names)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    stored = json.loads(entry.read_text())
    assert set(stored) == {"failed", "skipped", "format", "version", "kind", "digest", "mac"}
    text = entry.read_text()
    assert "users.handler.handler" not in text and "kms:*" not in text and '"after"' not in text


def test_a_plan_that_differs_only_in_its_timestamp_is_a_hit(first, spy):
    root, miss, _ = first
    hit = scan(root, plan_doc("2031-12-31T23:59:59Z"))
    assert hit.cached and spy.scans == [] and comparable(hit) == comparable(miss)


RELEVANT = [{"resource": f"module.functions[\"f{i}\"].aws_lambda_alias.this[\"live\"]", "attribute": ["invoke_arn"]}
            for i in range(6)] + [{"resource": "module.app_config.data.aws_caller_identity.current",
                                   "attribute": ["account_id"]}]


def test_relevant_attributes_are_a_set_their_order_is_no_other_plan_but_their_content_is(first):
    """terraform writes relevant_attributes in map order: two plans of one deployed stack never list
    them alike (tests/e2e/test_deploy_path.py shows the hit on the real stack); a different entry
    is a different plan."""
    root, _, _ = first
    gate_cfg = gate.load_gate(root)

    def digest(relevant):
        return gate.plan_digest(root, plan_doc() | {"relevant_attributes": relevant}, ".deployctl/dev/plan/plan.json",
                                root / "terraform" / "envs" / "dev", gate_cfg, "checkov 3.3.30")

    base = digest(RELEVANT)
    assert digest(list(reversed(RELEVANT))) == base
    assert digest(RELEVANT[3:] + RELEVANT[:3]) == base
    other = [dict(r) for r in RELEVANT]
    other[2]["attribute"] = ["function_name"]
    assert digest(other) != base
    assert digest(RELEVANT[:-1]) != base and digest(RELEVANT + RELEVANT[:1]) != base
    assert digest([]) != base


def _edit(path, text):
    original = path.read_bytes()
    path.write_text(text)
    return original


@pytest.mark.parametrize("change", ["plan", "policy", "enrichment source", "module of the env root", "plan path"])
def test_any_change_to_what_the_gate_judges_is_a_miss(first, spy, change):
    root, _, _ = first
    doc, plan_json, restore = plan_doc(), None, None
    if change == "plan":
        rc = next(rc for rc in doc["resource_changes"] if rc["type"] == "aws_sqs_queue")
        rc["change"]["after"]["name"] = rc["change"]["after"].get("name", "") + "-renamed"
    elif change == "policy":
        path = root / "policy" / "gate.toml"
        restore = path, _edit(path, POLICY + "# reviewed again\n")
    elif change == "enrichment source":
        path = root / "terraform" / "modules" / "kms" / "main.tf"
        restore = path, _edit(path, KMS_MAIN.replace("{\n", "{\n  #checkov:skip=CKV_AWS_7:fixture\n", 1))
    elif change == "module of the env root":
        path = root / "terraform" / "envs" / "dev" / "extra.tf"
        path.write_text("# a new file beside main.tf\n")
        restore = path, None
    else:
        plan_json = root / "elsewhere" / "plan.json"
        plan_json.parent.mkdir(exist_ok=True)
        shutil.copyfile(root / ".deployctl" / "dev" / "plan" / "plan.json", plan_json)
    try:
        with pytest.raises(Scanned):
            scan(root, doc, plan_json=plan_json)
    finally:
        if restore:
            path, data = restore
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
    assert scan(root).cached  # the inputs back as they were: a hit again


def wrapper(tmp_path, version: str):
    """A checkov that reports another version (``--version`` reads a file), else execs the real one."""
    (tmp_path / "version").write_text(version + "\n")
    script = tmp_path / "bin" / "checkov"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then cat "{tmp_path}/version"; exit 0; fi\n'
                      f'exec "{os.path.realpath(CHECKOV)}" "$@"\n')
    script.chmod(0o755)
    return script


def digest(root, checkov=CHECKOV) -> str:
    """The digest scan() keys its plan on, computed as an attacker (or a test) can."""
    return gate.plan_digest(root, plan_doc(), ".deployctl/dev/plan/plan.json", root / "terraform/envs/dev",
                            gate.load_gate(root), gate.checkov_identity(str(checkov)))


def test_another_checkov_version_is_a_miss(first, spy, tmp_path):
    root, _, entry = first
    cache = gatecache.GateCache.open(root / ".deployctl" / "dev" / "cache")
    real = digest(root)
    assert cache.path("plan", real) == entry  # the digest the gate computed
    payload = cache.get("plan", real)
    # the findings of the same plan, stored by a checkov that says it is 9.9.9
    script = wrapper(tmp_path, "9.9.9")
    identity = gate.checkov_identity(str(script))
    assert "9.9.9" in identity
    cache.put("plan", digest(root, script), payload)
    assert scan(root, checkov=script).cached
    # the same wrapper, the same path, now another version
    (tmp_path / "version").write_text("9.9.10\n")
    gate._identity.cache_clear()  # memoized per process by the executable's stat: a new process asks again
    with pytest.raises(Scanned):
        scan(root, checkov=script)
    assert [c[1:] for c in spy.calls if c[-1] == "--version"] == [["--version"], ["--version"]]


def test_an_installed_checkov_is_known_by_its_version_without_starting_it(tmp_path, spy):
    ident = gate.checkov_identity(str(CHECKOV))
    assert ident.startswith("checkov 3.") and "RECORD sha256" in ident and spy.calls == []
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    dist = venv / "lib" / "python3.11" / "site-packages" / "checkov-1.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: checkov\nVersion: 1.0.0\n")
    (dist / "RECORD").write_text("checkov/version.py,sha256=x,1\n")
    script = venv / "bin" / "checkov"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nfrom checkov.main import Checkov\n")
    script.chmod(0o755)
    before = gate.checkov_identity(str(script))
    assert before.startswith("checkov 1.0.0 ")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: checkov\nVersion: 1.0.1\n")
    (dist / "RECORD").write_text("checkov/version.py,sha256=y,1\n")
    gate._identity.cache_clear()
    assert gate.checkov_identity(str(script)).startswith("checkov 1.0.1 ") and spy.calls == []


DAMAGE = ["truncated", "not json", "a finding removed", "a symlink to a good entry", "a directory",
          "another digest's entry", "owned by another user", "another user key"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_foreign_entry_is_a_miss(first, spy, damage, tmp_path, monkeypatch):
    root, _, entry = first
    original = entry.read_bytes()
    moved = tmp_path / "good.json"
    try:
        if damage == "truncated":
            entry.write_bytes(original[: len(original) // 2])
        elif damage == "not json":
            entry.write_bytes(b"\x00\xff" * 10)
        elif damage == "a finding removed":
            data = json.loads(original)
            data["failed"] = data["failed"][1:]
            entry.write_text(json.dumps(data))
        elif damage == "a symlink to a good entry":
            shutil.copyfile(entry, moved)
            entry.unlink()
            entry.symlink_to(moved)
        elif damage == "a directory":
            entry.unlink()
            entry.mkdir()
        elif damage == "another digest's entry":
            cache = gatecache.GateCache.open(entry.parent)
            other = cache.path("plan", "0" * 64)
            cache.put("plan", "0" * 64, json.loads(original) | {"failed": []})
            shutil.copyfile(other, entry)  # a genuine entry, replayed under this plan's name
            other.unlink()
        elif damage == "owned by another user":
            if os.geteuid() != 0:
                pytest.skip("needs root to give a file away")
            os.chown(entry, 4242, 4242)
        else:  # a fresh runner, another user: another key; an entry made with the old one is not believed
            real = digest(root)
            monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-user"))
            moved = gatecache.GateCache.open(entry.parent).path("plan", real)
            shutil.copyfile(entry, moved)  # even under the name the new key gives it
        with pytest.raises(Scanned):
            scan(root)
    finally:
        if entry.is_dir() and not entry.is_symlink():
            entry.rmdir()
        entry.unlink(missing_ok=True)
        entry.write_bytes(original)
        os.chmod(entry, 0o600)
        monkeypatch.undo()
        if damage == "another user key":
            moved.unlink()
    assert scan(root).cached


def test_the_user_key_is_private_and_a_bad_one_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key = gatecache.user_key()
    path = tmp_path / "deployctl" / "gate-cache.key"
    assert key and len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert gatecache.user_key() == key  # made once
    path.chmod(0o644)  # readable by others: anyone could sign entries
    assert gatecache.user_key() is None and gatecache.GateCache.open(tmp_path / "c") is None
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    assert gatecache.user_key() is None


def test_entries_are_bounded(tmp_path):
    cache = gatecache.GateCache(tmp_path / "cache", b"k" * 32)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "checkov-0123abcd.json").write_text("{}")  # the unauthenticated format before
    for i in range(gatecache.KEEP + 4):
        cache.put("plan", f"{i:064x}", {"failed": [], "skipped": []})
    cache.put("source", "s" * 64, {"failed": [], "skipped": []})
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len([n for n in names if n.startswith("checkov-plan-")]) == gatecache.KEEP
    assert len([n for n in names if n.startswith("checkov-source-")]) == 1 and "checkov-0123abcd.json" not in names
    assert cache.get("plan", f"{gatecache.KEEP + 3:064x}") == {"failed": [], "skipped": []}  # the newest stays
    # a symlinked cache dir is never written through, nor read
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    linked = gatecache.GateCache(tmp_path / "link", b"k" * 32)
    linked.put("plan", "1" * 64, {"failed": []})
    assert list((tmp_path / "real").iterdir()) == [] and linked.get("plan", "1" * 64) is None


# -- the source gate: only the sources ----------------------------------------------------------


def test_a_publish_and_a_re_render_do_not_rescan_the_source_but_a_tf_change_does(tmp_path):
    root = copy_project("project", tmp_path)
    env_dir = root / "terraform" / "envs" / "dev"
    rec = Spy(stop=False)
    previous = runner.set_runner(rec)
    try:
        run = run_cli(root, "check", "--env", "dev", "--json")  # a fresh checkout: nothing rendered yet
        assert run.code == 0, run.err
        assert not json.loads(run.out)["result"]["cached"] and len(rec.scans) == 1
        # checkov scans a private copy of the sources, not the env root where render writes
        staged = [a for a in rec.scans[0] if "deployctl-scan-" in a]
        assert len(staged) == 2 and str(env_dir) not in rec.scans[0]
        assert run_cli(root, "render", "--env", "dev").code == 0
        tfvars = (env_dir / "deployctl.auto.tfvars.json").read_text()
        # what publish-lambda does to the manifest: a new key, version and time; then render again
        manifest = env_dir / "artifacts.json"
        data = json.loads(manifest.read_text())
        fn = data["functions"]["hello"]
        sha = "1f1e" + fn["sha256"][4:]
        fn.update(key=fn["key"].replace(fn["sha256"], sha), version_id="v-dev-2", published_at="2026-12-07T05:00:00Z",
                  sha256=sha, code_sha256=base64.b64encode(bytes.fromhex(sha)).decode())
        manifest.write_text(json.dumps(data, indent=2))
        assert run_cli(root, "render", "--env", "dev").code == 0
        assert (env_dir / "deployctl.auto.tfvars.json").read_text() != tfvars  # the rendered values changed
        run = run_cli(root, "check", "--env", "dev", "--json")
        assert run.code == 0 and json.loads(run.out)["result"]["cached"], run.err
        assert len(rec.scans) == 1
    finally:
        runner.set_runner(previous)
    cfg = load_env("dev", root)
    for changed in (env_dir / "main.tf", root / "terraform" / "modules" / "kms" / "main.tf"):
        original = changed.read_text()
        changed.write_text(original + "\n# reviewed\n")
        stop = Spy(stop=True)
        previous = runner.set_runner(stop)
        try:
            with pytest.raises(Scanned) as scanned:
                pipeline.run_check(Settings(checkov_bin=str(CHECKOV)), cfg, UI())
        finally:
            runner.set_runner(previous)
        staged = [a for a in scanned.value.args[0] if "deployctl-scan-" in a]
        assert [os.path.basename(a) for a in staged] == ["modules", "dev"]
        changed.write_text(original)
    previous = runner.set_runner(Spy(stop=True))
    try:
        assert pipeline.run_check(Settings(checkov_bin=str(CHECKOV)), cfg, UI()).cached  # both back: a hit
    finally:
        runner.set_runner(previous)


def test_the_source_scan_is_shown_the_sources_only_each_under_its_own_name(tmp_path):
    """prod's and staging's .tf files are symlinks to dev's: each is scanned as the env's own file."""
    root = tmp_path / "p"
    dev, prod = root / "terraform" / "envs" / "dev", root / "terraform" / "envs" / "prod"
    dev.mkdir(parents=True)
    prod.mkdir()
    (dev / "main.tf").write_text(ENV_MAIN)
    (prod / "main.tf").symlink_to("../dev/main.tf")
    for generated in ("deployctl.auto.tfvars.json", "backend.hcl", "artifacts.json", ".terraform.lock.hcl"):
        (prod / generated).write_text("{}")
    (prod / ".terraform" / "modules").mkdir(parents=True)
    (prod / ".terraform" / "modules" / "x.tf").write_text("")
    (prod / "extra.auto.tfvars").write_text('a = "b"\n')  # not deployctl's: checkov reads it, so it is shown
    files = gate.terraform_files(prod, root, skip=gate.GENERATED_FILES)
    assert sorted(files) == ["terraform/envs/prod/extra.auto.tfvars", "terraform/envs/prod/main.tf"]
