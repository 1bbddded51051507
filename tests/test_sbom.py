"""SBOM (CycloneDX) and provenance (in-toto/SLSA) per artifact: contents, schema, reproducibility,
and the git facts they rest on (commit, dirty inputs, a clean export).

Real git repositories, real pip installs of a wheel made here (PIP_NO_INDEX + a local --find-links),
real zip bytes; the schema check is cyclonedx-python-lib's own validator."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deployctl.artifacts import attest, packaging, provenance, sbom, source
from deployctl.config import load_env
from test_layers import add_layer
from test_package import make_project, make_wheel

REMOTE = "https://example.com/acme/demo.git"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=True)
    return proc.stdout.strip()


def licensed_wheel(dest: Path) -> Path:
    """A pure-Python wheel whose METADATA declares a license (fixed timestamps: the same bytes every time)."""
    return make_wheel(dest, "licdep", "2.0", {"licdep/__init__.py": "VALUE = 7\n",
                                             "licdep-2.0.dist-info/top_level.txt": "licdep\n"},
                      metadata="License-Expression: MIT\n", metadata_version="2.4")


@pytest.fixture
def wheel(tmp_path, monkeypatch) -> Path:
    path = licensed_wheel(tmp_path / "wheels")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(path.parent))
    return path


def git_project(dest: Path, wheel: Path) -> Path:
    """The fixture project with a layer (licdep pinned by hash) used by alpha, committed."""
    project = make_project(dest)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    add_layer(project, functions=("alpha",), requirement=f"licdep==2.0 \\\n    --hash=sha256:{digest}\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "fixture")
    git(project, "remote", "add", "origin", REMOTE)
    return project


def documents(project: Path) -> dict[str, attest.Documents]:
    cfg = load_env("dev", project)
    src = source.describe(cfg)
    build = packaging.build(cfg)
    return {f"{d.kind}:{d.name}": d for d in attest.for_build(cfg, build, src, packaging.source_date_epoch())}


def docs_zip(project: Path, function: str) -> bytes:
    """The bytes of the function's zip as the (cached) build placed it."""
    return packaging.build(load_env("dev", project), [function]).functions[0].path.read_bytes()


def test_sbom_and_provenance_are_byte_identical_across_directories_mtimes_and_umasks(tmp_path, wheel):
    a = git_project(tmp_path / "a", wheel)
    old = os.umask(0o077)
    try:
        subprocess.run(["git", "clone", "-q", str(a), str(tmp_path / "elsewhere" / "b")], check=True,
                       env={**os.environ, **GIT_ENV})
    finally:
        os.umask(old)
    b = tmp_path / "elsewhere" / "b"
    git(b, "remote", "set-url", "origin", REMOTE)
    for path in b.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1_234_567_890, 1_234_567_890))
    first, second = documents(a), documents(b)
    assert set(first) == {"layer:tiny", "function:alpha", "function:beta", "function:gamma"}
    for key in first:
        assert first[key].sbom == second[key].sbom, key
        assert first[key].provenance == second[key].provenance, key
        assert first[key].sha256 == second[key].sha256


def test_every_sbom_validates_against_the_cyclonedx_schema_and_says_what_is_inside(tmp_path, wheel):
    project = git_project(tmp_path / "p", wheel)
    docs = documents(project)
    for doc in docs.values():
        assert sbom.validate(doc.sbom) is None
    layer = json.loads(docs["layer:tiny"].sbom)
    pkg = next(c for c in layer["components"] if c["name"] == "licdep")
    assert pkg["version"] == "2.0" and pkg["purl"] == "pkg:pypi/licdep@2.0"
    assert pkg["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(wheel.read_bytes()).hexdigest()}]
    assert pkg["licenses"] == [{"expression": "MIT"}] or pkg["licenses"][0].get("license", {}).get("id") == "MIT"
    assert layer["metadata"]["component"]["hashes"][0]["content"] == docs["layer:tiny"].sha256
    assert layer["metadata"]["timestamp"].startswith("1980-01-01T00:00:00")  # SOURCE_DATE_EPOCH's default
    alpha = json.loads(docs["function:alpha"].sbom)
    components = {c["name"]: c for c in alpha["components"] if c["type"] == "file"}
    files = {name: c["hashes"][0]["content"] for name, c in components.items() if name.endswith(".py")}
    src = project / "lambda_src"
    assert files == {name: hashlib.sha256((src / name).read_bytes()).hexdigest() for name in files}
    assert "svc/alpha.py" in files and "shared/unused.py" not in files
    # the bytecode shipped beside them: the bytes in the zip, derived from a listed source, by a named CPython
    with zipfile.ZipFile(io.BytesIO(docs_zip(project, "alpha"))) as zf:
        shipped = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist() if n.endswith(".pyc")}
    derived = {name: c for name, c in components.items() if not name.endswith(".py")}
    assert {name: c["hashes"][0]["content"] for name, c in derived.items()} == shipped
    compiler = packaging.build(load_env("dev", project)).compiler
    for name, c in derived.items():
        props = {p["name"]: p["value"] for p in c["properties"]}
        assert props["deployctl:derived_from"] in files and name.startswith(props["deployctl:derived_from"].rsplit("/", 1)[0])
        assert props["deployctl:pyc_magic"] == compiler.magic
    assert ("svc/__pycache__/alpha.cpython-312.pyc" in derived) == (compiler is not None)
    # a package's bytecode is the package's: none of the layer's files is an unclaimed one
    assert not [c for c in layer["components"] if c["type"] == "file"]
    layer_ref = next(c for c in alpha["components"] if c["name"] == "tiny")
    assert layer_ref["hashes"][0]["content"] == docs["layer:tiny"].sha256
    assert alpha["serialNumber"].startswith("urn:uuid:")
    # the serial number follows the content: another function, another serial
    assert json.loads(docs["function:beta"].sbom)["serialNumber"] != alpha["serialNumber"]


def test_source_date_epoch_sets_the_sbom_timestamp(tmp_path, wheel, monkeypatch):
    project = git_project(tmp_path / "p", wheel)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    doc = documents(project)["function:gamma"]
    assert json.loads(doc.sbom)["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")
    facts = provenance.summary(doc.provenance)
    assert facts["source_date_epoch"] == 1700000000


def test_provenance_is_an_in_toto_statement_with_a_slsa_predicate_that_records_the_inputs(tmp_path, wheel):
    project = git_project(tmp_path / "p", wheel)
    commit = git(project, "rev-parse", "HEAD")
    docs = documents(project)
    for doc in docs.values():
        provenance.validate(doc.provenance)
    layer = json.loads(docs["layer:tiny"].provenance)
    assert layer["_type"] == "https://in-toto.io/Statement/v1"
    assert layer["predicateType"] == "https://slsa.dev/provenance/v1"
    assert layer["subject"] == [{"name": docs["layer:tiny"].key, "digest": {"sha256": docs["layer:tiny"].sha256},
                                 "mediaType": "application/zip"}]
    build = layer["predicate"]["buildDefinition"]
    assert build["externalParameters"]["source"] == {"repository": REMOTE, "commit": commit, "path": "",
                                                     "dirty": False}
    internal = build["internalParameters"]
    assert internal["python"] == "3.12" and internal["platforms"] == ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]
    assert internal["sourceDateEpoch"] == "315532800"
    deps = {d.get("name"): d for d in build["resolvedDependencies"]}
    req = project / "lambda_src/layers/tiny/requirements.txt"
    assert deps["lambda_src/layers/tiny/requirements.txt"]["digest"] == {"sha256": hashlib.sha256(req.read_bytes()).hexdigest()}
    assert deps["licdep==2.0"]["digest"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    assert deps["source"]["digest"] == {"gitCommit": commit} and deps["source"]["uri"] == f"git+{REMOTE}@{commit}"
    assert layer["predicate"]["runDetails"]["builder"]["version"]["deployctl"]
    alpha = json.loads(docs["function:alpha"].provenance)
    alpha_deps = {d.get("name"): d for d in alpha["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert alpha_deps["layer:tiny"]["digest"] == {"sha256": docs["layer:tiny"].sha256}
    # the interpreter that compiled the bytecode: a resolved input and an internal parameter
    compiler = packaging.build(load_env("dev", project)).compiler
    internal = alpha["predicate"]["buildDefinition"]["internalParameters"]
    if compiler is None:
        assert internal["bytecode"] == "none" and "bytecode-compiler" not in alpha_deps
    else:
        assert internal["bytecode"] == compiler.key == provenance.summary(docs["function:alpha"].provenance)["bytecode"]
        assert alpha_deps["bytecode-compiler"]["annotations"] == {"version": compiler.version, "magic": compiler.magic,
                                                                  "cacheTag": "cpython-312"}
        assert alpha_deps["bytecode-compiler"]["uri"] == f"pkg:generic/cpython@{compiler.version}"


def test_a_bad_statement_fails_the_layout_check():
    good = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x", "digest": {"sha256": "ab"}}],
            "predicateType": provenance.PREDICATE_TYPE,
            "predicate": {"buildDefinition": {"buildType": "urn:x"}, "runDetails": {"builder": {"id": "urn:y"}}}}
    provenance.validate(json.dumps(good).encode())
    for broken in ({**good, "subject": []}, {**good, "_type": "https://in-toto.io/Statement/v0.1"},
                   {**good, "subject": [{"name": "x"}]},
                   {**good, "predicate": {"buildDefinition": {"buildTyp": "urn:x"}}}):
        with pytest.raises(ValueError):
            provenance.validate(json.dumps(broken).encode())


def test_dirty_inputs_are_recorded_and_generated_files_are_not_dirt(tmp_path, wheel):
    project = git_project(tmp_path / "p", wheel)
    cfg = load_env("dev", project)
    assert source.describe(cfg).dirty is False
    (project / "lambda_src/svc/__pycache__").mkdir()
    (project / "lambda_src/svc/__pycache__/alpha.cpython-311.pyc").write_bytes(b"\0")
    (project / "README.local").write_text("not an input\n")
    assert source.describe(cfg).dirty is False
    (project / "lambda_src/svc/alpha.py").write_text("def handler(event, context):\n    return 'changed'\n")
    (project / "lambda_src/svc/new.py").write_text("X = 1\n")
    src = source.describe(cfg)
    assert src.dirty is True and src.dirty_paths == ("lambda_src/svc/alpha.py", "lambda_src/svc/new.py")
    doc = json.loads(documents(project)["function:alpha"].provenance)
    assert doc["predicate"]["buildDefinition"]["externalParameters"]["source"]["dirty"] is True


def test_outside_git_there_is_no_commit(tmp_path):
    project = make_project(tmp_path / "plain")
    src = source.describe(load_env("dev", project))
    assert src.commit == "" and src.dirty is True


def test_export_is_the_commit_not_the_working_tree(tmp_path, wheel):
    project = git_project(tmp_path / "p", wheel)
    commit = git(project, "rev-parse", "HEAD")
    committed = (project / "lambda_src/svc/alpha.py").read_bytes()
    (project / "lambda_src/svc/alpha.py").write_text("CHANGED = True\n")
    (project / "lambda_src/svc/extra.py").write_text("X = 1\n")
    cfg = load_env("dev", project)
    out = source.export(cfg, commit, "", tmp_path / "export")
    assert (out / "lambda_src/svc/alpha.py").read_bytes() == committed
    assert not (out / "lambda_src/svc/extra.py").exists()
    from deployctl.errors import OperationFailed

    with pytest.raises(OperationFailed, match="not in this clone"):
        source.export(cfg, "0" * 40, "", tmp_path / "none")
    with pytest.raises(OperationFailed, match="not a commit id"):
        source.export(cfg, "HEAD; rm -rf /", "", tmp_path / "none")


def test_a_remote_url_loses_its_credentials():
    assert source.strip_credentials("https://x-access-token:ghs_abc@github.com/o/r.git\n") == "https://github.com/o/r.git"
    assert source.strip_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_help_imports_neither_document_library():
    code = ("import sys; from deployctl.cli import main; sys.argv=['deployctl','--help']\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('cyclonedx', 'in_toto_attestation', 'google', "
            "'packageurl')]\nassert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_committed_link_out_of_the_tree_is_not_followed_by_the_export(tmp_path, wheel):
    project = git_project(tmp_path / "p", wheel)
    secret = tmp_path / "outside.txt"
    secret.write_text("not part of the project\n")
    (project / "lambda_src/svc/leak.py").symlink_to(secret)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a link out")
    from deployctl.errors import OperationFailed

    with pytest.raises(OperationFailed, match="cannot be exported safely"):
        source.export(load_env("dev", project), git(project, "rev-parse", "HEAD"), "", tmp_path / "export")
    assert not (tmp_path / "export/lambda_src/svc/leak.py").exists()
