"""deployctl render: tfvars and backend config from the env config (jinja2, StrictUndefined)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hcl2
import pytest

from deployctl.config import load_env
from deployctl.errors import ConfigError
from deployctl.infra import render
from tf_helpers import copy_project, run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    return copy_project("project", tmp_path)


def test_render_writes_valid_tfvars_with_manifest_and_derived_values(project):
    run = run_cli(project, "render", "--env", "dev", "--json", tools=False)
    assert run.code == 0, run.err
    result = json.loads(run.out)["result"]
    path = project / "terraform/envs/dev/deployctl.auto.tfvars.json"
    assert result["tfvars"] == str(path)
    data = json.loads(path.read_text())
    assert set(data) == {"environment", *render.SECTIONS}
    assert data["environment"] == "dev"
    assert "tools" not in data
    # state is rendered derived (the CI roles are granted exactly that bucket and key)
    assert data["state"] == {"bucket": "fixture-tfstate-123456789012-eu-west-1", "key": "fixture/dev/terraform.tfstate"}
    assert data["ci"] == {}  # absent: no CI roles
    assert data["logs"] == {"retention_days": 3}  # env.toml overrides defaults.toml
    assert data["artifacts"]["bucket"] == "fixture-dev-artifacts-123456789012"  # derived
    hello = data["functions"]["hello"]
    assert hello["s3_bucket"] == "fixture-dev-artifacts-123456789012"
    assert hello["s3_key"].startswith("lambda/hello/") and hello["s3_key"].endswith(".zip")
    assert hello["s3_object_version"] == "v-dev-1"
    assert data["alarms"] == {} and data["api"] == {}  # absent optional sections: the roots' defaults apply
    # no temp files left behind by the atomic write
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


def test_secure_parameter_values_are_never_rendered(project):
    cfg = load_env("dev", project)
    # config.py already refuses a secure value in a file; render must drop one however it got there
    cfg.data["parameters"]["api-token"]["value"] = "s3cr3t-Value-42"
    result = render.render(cfg)
    text = result.tfvars_path.read_text()
    assert "s3cr3t-Value-42" not in text
    assert result.omitted_secrets == ["api-token"]
    data = json.loads(text)
    assert data["parameters"]["api-token"] == {"description": "set out of band", "secure": True}
    assert data["parameters"]["greeting"]["value"] == "hello"  # plain values are kept


def test_secure_value_in_a_config_file_is_refused(project):
    env_toml = project / "terraform/envs/dev/env.toml"
    env_toml.write_text(env_toml.read_text() + '\n[parameters.api-token]\nvalue = "s3cr3t-Value-42"\n')
    run = run_cli(project, "render", "--env", "dev", tools=False)
    assert run.code == 2
    assert "s3cr3t-Value-42" not in run.out + run.err
    assert not (project / "terraform/envs/dev/deployctl.auto.tfvars.json").exists()


def test_missing_artifact_is_a_config_error_unless_foundation(project):
    (project / "terraform/envs/dev/artifacts.json").unlink()
    run = run_cli(project, "render", "--env", "dev", tools=False)
    assert run.code == 2
    assert "no published artifact for function(s) hello" in run.err
    assert "publish-lambda" in run.err
    assert not (project / "terraform/envs/dev/deployctl.auto.tfvars.json").exists()

    run = run_cli(project, "render", "--env", "dev", "--foundation", "--json", tools=False)
    assert run.code == 0, run.err
    assert json.loads(run.out)["result"]["missing_artifacts"] == ["hello"]
    fn = json.loads((project / "terraform/envs/dev/deployctl.auto.tfvars.json").read_text())["functions"]["hello"]
    assert (fn["s3_bucket"], fn["s3_key"], fn["s3_object_version"]) == ("", "", "")


def test_backend_config_is_valid_hcl(project):
    import hcl2

    assert run_cli(project, "render", "--env", "dev", tools=False).code == 0
    with (project / "terraform/envs/dev/backend.hcl").open() as fh:
        backend = hcl2.load(fh)
    assert json.loads(backend["bucket"]) == "fixture-tfstate-123456789012-eu-west-1"
    assert json.loads(backend["key"]) == "fixture/dev/terraform.tfstate"
    assert json.loads(backend["region"]) == "eu-west-1"
    assert backend["encrypt"] is True and backend["use_lockfile"] is True


def test_strict_undefined_names_the_missing_value():
    with pytest.raises(ConfigError) as err:
        render.render_template("inline", {"bucket": "b"}, source="bucket = {{ bucket | hcl }}\nkey = {{ key | hcl }}\n")
    assert "'key'" in err.value.message
    with pytest.raises(ConfigError) as err:
        render.render_template("inline", {"aws": {}}, source="{{ aws.region | tojson }}")
    assert "'region'" in err.value.message


@pytest.mark.parametrize(
    "value",
    ['plain', 'quote " and \\ backslash', "${var.injected}", "%{ if true }x%{ endif }", "line\nbreak\ttab", "ünïcødé"],
)
def test_filters_write_valid_literals(value):
    import hcl2

    assert json.loads(render.to_json({"v": value})) == {"v": value}
    parsed = hcl2.loads(f"v = {render.to_hcl(value)}\n")
    # python-hcl2 returns the literal as written (quoted, escaped); unescape it for the comparison
    assert json.loads(parsed["v"].replace("$${", "${").replace("%%{", "%{")) == value
    assert "${" not in render.to_hcl(value).replace("$${", "")


def test_a_value_that_is_not_json_is_a_config_error():
    with pytest.raises(ConfigError):
        render.to_json({"v": float("nan")})


def test_real_project_renders_every_section(tmp_path):
    """The repository's own config renders (foundation mode: no artifacts needed) to all contract keys."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "terraform" / "envs", root / "terraform" / "envs",
                    ignore=shutil.ignore_patterns(".terraform*", "deployctl.auto.tfvars.json", "backend.hcl"))
    for env in ("dev", "staging", "prod"):
        cfg = load_env(env, root)
        result = render.render(cfg, allow_missing_artifacts=True)
        data = json.loads(result.tfvars_path.read_text())
        assert set(data) == {"environment", *render.SECTIONS}
        assert data["artifacts"]["bucket"] == cfg.artifact_bucket()
        assert all({"s3_bucket", "s3_key", "s3_object_version"} <= set(fn) for fn in data["functions"].values())
        for name, param in data["parameters"].items():
            if param.get("secure"):
                assert "value" not in param, name


def test_real_env_roots_declare_every_rendered_key():
    """Contract with the env roots: one variable per rendered key (checked once the roots exist)."""
    import hcl2

    roots = [d for d in sorted((ROOT / "terraform" / "envs").iterdir()) if d.is_dir() and list(d.glob("*.tf"))]
    if not roots:
        pytest.skip("the env roots are not written yet")
    for d in roots:
        declared = set()
        for tf in d.glob("*.tf"):
            with tf.open() as fh:
                for block in hcl2.load(fh).get("variable", []):
                    declared |= {name.strip('"') for name in block}
        assert {"environment", *render.SECTIONS} <= declared, d.name


@pytest.mark.parametrize("path_style", [True, False])
def test_s3_path_style_reaches_the_backend_the_provider_and_boto3(tmp_path, path_style):
    from deployctl import aws
    from deployctl.config import load_env

    project = copy_project("project", tmp_path)
    env_toml = project / "terraform/envs/dev/env.toml"
    env_toml.write_text(env_toml.read_text() + f"\n[aws]\ns3_use_path_style = {str(path_style).lower()}\n")
    cfg = load_env("dev", project)
    result = render.render(cfg, allow_missing_artifacts=True)
    backend = hcl2.loads(result.backend_path.read_text())
    assert backend["use_path_style"] is path_style
    assert json.loads(result.tfvars_path.read_text())["aws"]["s3_use_path_style"] is path_style
    client = aws.s3_client(cfg)
    assert client.meta.config.s3 == ({"addressing_style": "path"} if path_style else None)
