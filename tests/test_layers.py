"""Lambda layers: config, reproducible builds for the Lambda platform, function zips
without what their layers provide, publish to a real moto server, tfvars, and
``deployctl local``'s import path.

Most tests install a tiny pure-Python wheel made here (pip with PIP_NO_INDEX and
a local --find-links: no network); one test builds the real shared layer."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deployctl import runner
from deployctl.artifacts import bytecode, layers, manifest, packaging, publish
from deployctl.config import load_defaults, load_env
from deployctl.errors import ConfigError
from deployctl.infra import render
from deployctl.local import layers as local_layers
from test_package import _wheel, make_project, names
from test_publish import BUCKET, terraform_applied, use_account

ROOT = Path(__file__).resolve().parents[1]


def add_layer(project: Path, *, functions=("alpha",), requirement: str = "tinydep==1.0\n") -> Path:
    """[layers.tiny] (requirements under lambda_src/) listed by ``functions``."""
    defaults = project / "terraform/envs/defaults.toml"
    text = defaults.read_text()
    for fn in functions:
        text = text.replace(f"[functions.{fn}]\n", f'[functions.{fn}]\nlayers = ["tiny"]\n')
    text += '\n[layers.tiny]\ndescription = "a tiny test layer"\nrequirements = "layers/tiny/requirements.txt"\n'
    defaults.write_text(text)
    req = project / "lambda_src/layers/tiny/requirements.txt"
    req.parent.mkdir(parents=True, exist_ok=True)
    req.write_text(requirement)
    return req


@pytest.fixture
def wheels(tmp_path, monkeypatch) -> Path:
    """A local wheel index holding only tinydep 1.0; pip never reaches the network."""
    where = tmp_path / "wheels"
    _wheel(where)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(where))
    return where


class Recording(runner.Runner):
    def __init__(self):
        super().__init__()
        self.seen: list[list[str]] = []

    def run(self, argv, **kwargs):
        if list(argv[1:3]) == ["-m", "pip"]:  # pip only (the bytecode compiler runs through the runner too)
            self.seen.append([str(a) for a in argv])
        return super().run(argv, **kwargs)


@pytest.fixture
def pip_calls():
    rec = Recording()
    previous = runner.set_runner(rec)
    yield rec.seen
    runner.set_runner(previous)


# -- config -------------------------------------------------------------------------------------


def test_a_function_naming_an_unknown_layer_is_one_config_error(tmp_path):
    project = make_project(tmp_path / "p")
    add_layer(project)
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text().replace('layers = ["tiny"]', 'layers = ["tiny", "nope"]'))
    with pytest.raises(ConfigError) as exc:
        load_defaults(project)
    assert "functions.alpha.layers" in exc.value.message and "'nope'" in exc.value.message
    assert exc.value.where.endswith("defaults.toml")
    assert "\n" not in exc.value.message


def test_more_than_five_layers_and_paths_outside_lambda_src_are_refused(tmp_path):
    project = make_project(tmp_path / "p")
    add_layer(project)
    defaults = project / "terraform/envs/defaults.toml"
    base = defaults.read_text()
    extra = "".join(f'\n[layers.l{i}]\nrequirements = "layers/tiny/requirements.txt"\n' for i in range(5))
    six = '", "'.join(["tiny", *(f"l{i}" for i in range(5))])
    defaults.write_text(base.replace('layers = ["tiny"]', f'layers = ["{six}"]') + extra)
    with pytest.raises(ConfigError, match="at most 5"):
        load_defaults(project)
    defaults.write_text(base.replace('"layers/tiny/requirements.txt"', '"layers/../../etc/requirements.txt"'))
    with pytest.raises(ConfigError, match="inside lambda_src"):
        load_defaults(project)


def test_a_missing_requirements_file_names_the_key(tmp_path, wheels):
    project = make_project(tmp_path / "p")
    add_layer(project).unlink()
    with pytest.raises(ConfigError) as exc:
        packaging.build(load_defaults(project))
    assert "layers.tiny.requirements" in exc.value.message and "does not exist" in exc.value.message


# -- build --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_layer_is_built_for_the_lambda_platform_under_python_and_cached(tmp_path, wheels, pip_calls):
    project = make_project(tmp_path / "p")
    add_layer(project)
    cfg = load_defaults(project)
    build = packaging.build(cfg, None, tmp_path / "out")
    (layer,) = build.layers
    assert layer.kind == "layer" and layer.function == "tiny" and not layer.cached
    assert layer.path == tmp_path / "out" / "layers" / "tiny.zip"
    argv = pip_calls[0]
    assert argv[1:4] == ["-m", "pip", "install"]
    assert "--only-binary=:all:" in argv and "--no-compile" in argv
    assert argv[argv.index("--implementation") + 1] == "cp"
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert "manylinux2014_x86_64" in argv
    listing = names(layer.path)
    assert listing == sorted(listing)
    assert all(n.startswith("python/") for n in listing)
    assert "python/tinydep/__init__.py" in listing
    assert not any(n.endswith((".pyo", "direct_url.json")) or "/bin/" in n for n in listing)
    # the only bytecode is ours: beside a .py of the zip, for the runtime's Python (none if it is missing)
    assert {n for n in listing if "__pycache__" in n or n.endswith(".pyc")} <= {
        bytecode.pyc_name(n, "cpython-312") for n in listing if n.endswith(".py")}
    with zipfile.ZipFile(layer.path) as zf:
        record = zf.read("python/tinydep-1.0.dist-info/RECORD").decode()
        infos = zf.infolist()
    rows = [r[0] for r in csv.reader(io.StringIO(record))]
    assert rows == sorted(rows) and not any(r.startswith("/") or ".." in r for r in rows)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert str(tmp_path).encode() not in layer.path.read_bytes()
    assert layer.provides == ["tinydep", "tinydep-1.0.dist-info"]

    calls = len(pip_calls)
    again = packaging.build(cfg, None, tmp_path / "out2").layers[0]
    assert again.cached and again.sha256 == layer.sha256 and len(pip_calls) == calls, "cache hit: pip not run"

    # arm64 is another platform: another build
    (project / "terraform/envs/defaults.toml").write_text(
        (project / "terraform/envs/defaults.toml").read_text().replace('architecture = "x86_64"',
                                                                       'architecture = "arm64"'))
    arm = packaging.build(load_defaults(project), None, tmp_path / "out3").layers[0]
    assert not arm.cached and "manylinux2014_aarch64" in pip_calls[-1]


@pytest.mark.slow
def test_identical_layer_bytes_across_directories_umasks_and_mtimes(tmp_path, wheels):
    shas = []
    for i, (umask, mtime) in enumerate([(0o022, 1_600_000_000), (0o077, 1_700_000_000)]):
        project = make_project(tmp_path / f"p{i}", umask=umask, mtime=mtime)
        old = os.umask(umask)
        try:
            add_layer(project)
            build = packaging.build(load_defaults(project), None, tmp_path / f"out{i}")
        finally:
            os.umask(old)
        shas.append((build.layers[0].path.read_bytes(), [f.path.read_bytes() for f in build.functions]))
    assert shas[0][0] == shas[1][0], "layer zips differ"
    assert shas[0][1] == shas[1][1], "function zips differ"


@pytest.mark.slow
def test_function_zips_leave_out_what_their_layers_provide(tmp_path, wheels):
    project = make_project(tmp_path / "p")
    # alpha and gamma both vendor tinydep; only alpha gets it from the layer
    for fn in ("alpha", "gamma"):
        req = project / f"lambda_src/requirements/{fn}.txt"
        req.parent.mkdir(exist_ok=True)
        req.write_text("tinydep==1.0\n")
    before = {a.function: names(a.path) for a in packaging.package(load_defaults(project), None, tmp_path / "a")}
    assert "tinydep/__init__.py" in before["alpha"]
    add_layer(project)
    build = packaging.build(load_defaults(project), None, tmp_path / "b")
    after = {a.function: a for a in build.functions}
    assert after["alpha"].layers == ["tiny"]
    assert not any(n.startswith("tinydep") for n in names(after["alpha"].path))
    assert "svc/alpha.py" in names(after["alpha"].path)
    assert "tinydep/__init__.py" in names(after["gamma"].path), "gamma lists no layer: keeps its copy"
    assert [a.function for a in build.layers] == ["tiny"]


@pytest.mark.slow
def test_the_real_shared_layer_and_functions_import_together(tmp_path):
    """The project's own shared layer (aws-lambda-powertools from PyPI, cached), unpacked as
    /opt/python beside each function's zip: every handler imports, powertools from the layer."""
    cfg = load_env("dev", ROOT)
    build = packaging.build(cfg, None, tmp_path / "out")
    (shared,) = build.layers
    assert "aws_lambda_powertools" in shared.provides
    opt = tmp_path / "opt"
    with zipfile.ZipFile(shared.path) as zf:
        zf.extractall(opt)
    for art in build.functions:
        assert art.layers == ["shared"]
        assert not any(n.startswith("aws_lambda_powertools") for n in names(art.path))
        task = tmp_path / "task" / art.function
        with zipfile.ZipFile(art.path) as zf:
            zf.extractall(task)
        module = cfg.functions[art.function]["handler"].rpartition(".")[0]
        code = (f"import sys; sys.path[:0] = [{str(task)!r}, {str(opt / 'python')!r}]; import {module}; "
                "import aws_lambda_powertools as p; print(p.__file__)")
        out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith(str(opt / "python"))


# -- publish and render -------------------------------------------------------------------------


@pytest.fixture
def published_project(tmp_path, wheels, aws_env, monkeypatch):
    use_account(monkeypatch, "111111111111")
    project = make_project(tmp_path / "p")
    add_layer(project, functions=("alpha", "beta"))
    terraform_applied()
    return project


@pytest.mark.slow
def test_publish_uploads_layers_content_addressed_and_a_rerun_uploads_nothing(published_project):
    import boto3

    cfg = load_env("dev", published_project)
    first = publish.publish(cfg)
    layer = first["layers"]["tiny"]
    assert layer["uploaded"] and layer["key"] == f"layers/tiny/{layer['sha256']}.zip"
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=layer["key"])
    assert head["VersionId"] == layer["version_id"] and head["ServerSideEncryption"] == "aws:kms"
    data = manifest.load_manifest(cfg)
    entry = data["layers"]["tiny"]
    assert entry["key"] == layer["key"] and entry["version_id"] == layer["version_id"]
    assert set(entry) == set(manifest.ENTRY_KEYS) | set(manifest.OPTIONAL_ENTRY_KEYS)

    second = publish.publish(cfg)
    assert second["bytes_uploaded"] == 0
    assert not any(i["uploaded"] for i in [*second["functions"].values(), *second["layers"].values()])
    assert manifest.load_manifest(cfg) == data, "nothing changed: the manifest is byte-for-byte the same"

    # rendered for Terraform, with the hash that decides whether a new layer version appears
    rendered = render.render(cfg)
    tf_layer = rendered.tfvars["layers"]["tiny"]
    assert tf_layer == {"description": "a tiny test layer", "s3_bucket": BUCKET, "s3_key": layer["key"],
                        "s3_object_version": layer["version_id"], "source_code_hash": entry["code_sha256"]}
    assert rendered.tfvars["functions"]["alpha"]["layers"] == ["tiny"]
    assert rendered.missing_layers == []


def test_render_without_a_layer_artifact_only_for_the_foundation(tmp_path):
    project = make_project(tmp_path / "p")
    add_layer(project)
    cfg = load_env("dev", project)
    empty = {"schema": 1, "env": "dev", "functions": {}}
    with pytest.raises(ConfigError, match="no published artifact for layer"):
        render.render_tfvars_text(cfg, empty)
    _, tfvars, _, _ = render.render_tfvars_text(cfg, empty, allow_missing_artifacts=True)
    assert tfvars["layers"]["tiny"]["s3_key"] == "" and "requirements" not in tfvars["layers"]["tiny"]


def test_an_old_manifest_without_layers_still_loads(tmp_path):
    project = make_project(tmp_path / "p")
    cfg = load_env("dev", project)
    manifest.manifest_path(cfg).write_text(json.dumps({"schema": 1, "env": "dev", "functions": {}}))
    assert manifest.load_manifest(cfg)["layers"] == {}


# -- deployctl local ----------------------------------------------------------------------------


@pytest.mark.slow
def test_local_puts_the_layer_right_after_the_code_and_caches_it(tmp_path, wheels, pip_calls, monkeypatch):
    project = make_project(tmp_path / "p")
    add_layer(project)
    cfg = load_defaults(project)
    code = project / "lambda_src"
    monkeypatch.setattr(sys, "path", [str(code), *sys.path])
    (path,) = local_layers.put_on_path(cfg, code)
    assert sys.path[:2] == [str(code), str(path)]
    assert path.parent == project / ".deployctl" / "cache" / "layers"
    assert (path / "tinydep" / "__init__.py").is_file()
    argv = pip_calls[-1]
    assert "--platform" not in argv, "local: the local interpreter's platform"
    calls = len(pip_calls)
    assert local_layers.put_on_path(cfg, code) == [path] and len(pip_calls) == calls, "cached: pip not run"
    assert sys.path.count(str(path)) == 1
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(path)!r}); "
                          "import tinydep; print(tinydep.VALUE)"], capture_output=True, text=True)
    assert out.stdout.strip() == "42"


def test_layer_input_hash_covers_requirements_and_platform(tmp_path):
    project = make_project(tmp_path / "p")
    req = add_layer(project)
    cfg = load_defaults(project)
    base = layers.input_hash(cfg, req, 0)
    req.write_text("tinydep==1.0\n# changed\n")
    assert layers.input_hash(cfg, req, 0) != base
    cfg.data["lambda"]["architecture"] = "arm64"
    assert layers.input_hash(cfg, req, 0) != layers.input_hash(load_defaults(project), req, 0)


@pytest.mark.slow
def test_cli_package_json_lists_layers_and_each_functions_layers(tmp_path, wheels):
    from test_package import invoke

    project = make_project(tmp_path / "p")
    add_layer(project)
    run = invoke(["--json", "package"], project)
    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout)["result"]
    tiny = result["layers"]["tiny"]
    assert tiny["layer"] == "tiny" and tiny["path"].endswith("layers/tiny.zip") and "tinydep" in tiny["provides"]
    assert result["functions"]["alpha"]["layers"] == ["tiny"] and result["functions"]["gamma"]["layers"] == []
