"""Issue 15, "Why" item 9: config values that passed render and failed later, or misled.

Each attack edits a copy of the fixture project the way a config author (or a pull request)
could, runs the real CLI (``python -m deployctl render --env dev`` in a subprocess), and
asserts that it now fails safely: exit 2, one line naming the file and the dotted key, and
nothing written (no tfvars, no backend.hcl, no other file changed). The backend.hcl escapes
are checked by Terraform's own parser: a real ``terraform init -backend-config=backend.hcl``
against a moto S3 server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tf_helpers import copy_project

DEV = Path("terraform/envs/dev")
DEFAULTS = "terraform/envs/defaults.toml"
ENV_TOML = "terraform/envs/dev/env.toml"
MANIFEST = "terraform/envs/dev/artifacts.json"


@pytest.fixture
def project(tmp_path):
    return copy_project("project", tmp_path)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def append(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")


def deployctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return subprocess.run([sys.executable, "-m", "deployctl", "--root", str(root), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def refused(root: Path, file: str, key: str, *more: str, args: tuple[str, ...] = (), env: str = "dev") -> str:
    """Run render; assert exit 2, one line naming ``file`` and ``key`` (and ``more``), nothing written."""
    before = snapshot(root)
    run = deployctl(root, "render", "--env", env, *args)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert len(lines) == 1, run.stderr
    line = lines[0]
    prefix = f"error: {root / file}: "
    assert line.startswith(prefix), line
    message = line[len(prefix):]  # (the tmp path holds the test's name: match the message only)
    assert f"'{key}'" in message, line
    for text in more:
        assert text in message, line
    assert snapshot(root) == before, "render wrote or changed a file"
    env_dir = root / "terraform/envs" / env
    assert not (env_dir / "deployctl.auto.tfvars.json").exists() and not (env_dir / "backend.hcl").exists()
    return line


# -- non-finite numbers -------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_number_in_env_toml_names_the_file_and_key(project, literal):
    append(project, ENV_TOML, f"[alarms]\napi_p99_latency_ms = {literal}")  # a number with no upper bound
    refused(project, ENV_TOML, "alarms.api_p99_latency_ms", "finite")


def test_non_finite_number_with_bounds_says_why(project):
    append(project, ENV_TOML, "[api]\nthrottle_rate_limit = nan")  # nan compares false with both bounds
    refused(project, ENV_TOML, "api.throttle_rate_limit", "finite")


def test_non_finite_threshold_in_defaults_toml_names_defaults(project):
    append(project, DEFAULTS, "[alarms]\napi_5xx_threshold = inf")
    refused(project, DEFAULTS, "alarms.api_5xx_threshold", "finite")


def test_non_finite_number_in_the_manifest_names_the_manifest(project):
    path = project / MANIFEST
    path.write_text(path.read_text().replace('"size": 1234', '"size": NaN'))
    refused(project, MANIFEST, "functions.hello.size", "NaN")


# -- a list item is reported against the file that set the list ---------------------------


def test_bad_cors_origin_in_env_toml_is_reported_against_env_toml(project):
    append(project, DEFAULTS, '[api]\ncors_allowed_origins = ["https://example.com"]')
    append(project, ENV_TOML, '[api]\ncors_allowed_origins = ["http://localhost:3000", "javascript:alert(1)"]')
    refused(project, ENV_TOML, "api.cors_allowed_origins[1]")


def test_bad_cors_origin_in_defaults_toml_is_reported_against_defaults(project):
    append(project, DEFAULTS, '[api]\ncors_allowed_origins = ["https://ok.example", "https://evil.example\\r\\nX-Injected: 1"]')
    refused(project, DEFAULTS, "api.cors_allowed_origins[1]")


# -- keys that collide with names other modules make, or with each other ------------------


@pytest.mark.parametrize("function", ["apigateway-cloudwatch", "github-plan", "github-apply"])
@pytest.mark.parametrize("ci", [False, True], ids=["no-ci", "with-ci"])
def test_function_named_like_another_modules_role_is_refused(project, function, ci):
    append(project, DEFAULTS, f'[functions.{function}]\nhandler = "hello.handler"')
    if ci:
        append(project, ENV_TOML, '[ci]\ngithub_repository = "example-org/demo"')
    refused(project, DEFAULTS, f"functions.{function}", "IAM role name", f"fixture-dev-{function}",
            args=("--foundation",))


def test_tables_whose_statement_ids_collide_are_refused(project):
    append(project, DEFAULTS, '[tables.a-b]\npartition_key = "pk"\n[tables.a--b]\npartition_key = "pk"')
    append(project, ENV_TOML, '[functions.hello]\ntables_read = ["a-b", "a--b"]')
    line = refused(project, DEFAULTS, "tables.a--b", "ReadTableAB", args=("--foundation",))
    assert "tables.a-b" in line


def test_distinct_functions_whose_names_nest_still_render(project):
    # function "x-dlq" has the queue "<prefix>-x-dlq-dlq"; "x" has "<prefix>-x-dlq": distinct, so render passes
    append(project, DEFAULTS, '[functions.x]\nhandler = "hello.handler"\n[functions.x-dlq]\nhandler = "hello.handler"')
    run = deployctl(project, "render", "--env", "dev", "--foundation")
    assert run.returncode == 0, run.stderr


# -- the artifact manifest -----------------------------------------------------------------


def test_manifest_naming_another_bucket_is_refused(project):
    path = project / MANIFEST
    data = json.loads(path.read_text())
    data["functions"]["hello"]["bucket"] = "attacker-owned-bucket"
    path.write_text(json.dumps(data))
    refused(project, MANIFEST, "functions.hello.bucket", "fixture-dev-artifacts-123456789012")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", "lambda/hello/evil.zip"),
        ("key", "lambda/other/0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100.zip"),
        ("sha256", "not-a-digest"),
        ("code_sha256", "AAAA"),
        ("version_id", "v1\nline"),
        ("size", -1),
        ("published_at", "yesterday"),
    ],
)
def test_manifest_entry_fields_must_have_the_publishers_shape(project, field, value):
    path = project / MANIFEST
    data = json.loads(path.read_text())
    data["functions"]["hello"][field] = value
    path.write_text(json.dumps(data))
    refused(project, MANIFEST, f"functions.hello.{field}")


def test_manifest_entry_may_carry_extra_well_formed_fields(project):
    path = project / MANIFEST
    data = json.loads(path.read_text())
    sha = data["functions"]["hello"]["sha256"]
    data["functions"]["hello"]["sbom"] = {"key": f"lambda/hello/{sha}.cdx.json", "version_id": "v1", "sha256": "0" * 64}
    data["functions"]["hello"]["notes"] = "an unregistered field is kept and ignored"
    path.write_text(json.dumps(data))
    run = deployctl(project, "render", "--env", "dev")
    assert run.returncode == 0, run.stderr


def test_manifest_entry_with_a_malformed_registered_field_is_refused(project):
    path = project / MANIFEST
    data = json.loads(path.read_text())
    data["functions"]["hello"]["sbom"] = {"key": "sbom/hello.json"}
    path.write_text(json.dumps(data))
    refused(project, MANIFEST, "functions.hello.sbom")


# -- backend.hcl ---------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ["\\b", "\\f", "\\u001b", "\\u0000"])
def test_control_character_in_state_key_is_refused(project, escape):
    append(project, ENV_TOML, f'[state]\nkey = "fixture/dev{escape}/terraform.tfstate"')
    refused(project, ENV_TOML, "state.key", "control character")


@pytest.mark.parametrize("key", ["/fixture/dev.tfstate", "fixture//dev.tfstate", "fixture/dev/"])
def test_state_key_terraform_would_refuse_is_refused(project, key):
    append(project, ENV_TOML, f'[state]\nkey = "{key}"')
    refused(project, ENV_TOML, "state.key")


def modern_terraform() -> str:
    """A Terraform >= 1.10 (the s3 backend's use_lockfile): DEPLOYCTL_E2E_TERRAFORM, else the first on PATH."""
    found = []
    for binary in filter(None, [os.environ.get("DEPLOYCTL_E2E_TERRAFORM"), shutil.which("terraform")]):
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60).stdout
        m = re.search(r'"terraform_version":\s*"(\d+)\.(\d+)', out)
        if m and (int(m.group(1)), int(m.group(2))) >= (1, 10):
            return binary
        found.append(binary)
    message = f"no Terraform >= 1.10 to parse backend.hcl with (found: {', '.join(found) or 'none'})"
    if os.environ.get("DEPLOYCTL_E2E_REQUIRED"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def moto_s3(moto_reset):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_reset, region_name="eu-west-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket="fixture-tfstate-123456789012-eu-west-1",
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return moto_reset, client


@pytest.mark.parametrize(
    "key",
    [
        'quote"and\\backslash/terraform.tfstate',
        "template${var.x}and%{ if true }x%{ endif }/terraform.tfstate",
        "$${already}/terraform.tfstate",
        "back\bspace/form\ffeed/esc\x1b/del\x7f/tab\t/terraform.tfstate",
        "ünïcødé/terraform.tfstate",
    ],
    ids=["quote-backslash", "templates", "escaped-template", "control-characters", "unicode"],
)
def test_backend_hcl_is_parsed_by_terraform_init_to_the_same_values(tmp_path, moto_s3, key):
    """Whatever backend.hcl holds, Terraform's own parser (terraform init -backend-config) reads back
    exactly the rendered values. The config refuses control characters in state.key; the template
    must still escape them (any value that reaches it, e.g. a future field)."""
    from deployctl.infra import render

    endpoint, s3 = moto_s3
    context = {"environment": "dev", "bucket": "fixture-tfstate-123456789012-eu-west-1", "key": key,
               "region": "eu-west-1", "use_path_style": True}
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    (root / "backend.hcl").write_text(render.render_template("backend.hcl.j2", context), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "2",
                "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_ARGS": "-no-color"})
    init = subprocess.run([modern_terraform(), "init", "-input=false", "-backend-config=backend.hcl"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=180)
    assert init.returncode == 0, init.stderr
    saved = json.loads((root / ".terraform" / "terraform.tfstate").read_text())["backend"]["config"]
    assert saved["key"] == key and saved["bucket"] == context["bucket"] and saved["region"] == "eu-west-1"
    assert saved["use_path_style"] is True and saved["encrypt"] is True and saved["use_lockfile"] is True


# -- lengths and character sets beyond what AWS accepts --------------------------------------


def test_300000_character_parameter_description_is_refused(project):
    append(project, ENV_TOML, f'[parameters.greeting]\ndescription = "{"x" * 300_000}"')
    refused(project, ENV_TOML, "parameters.greeting.description", "1024")


def test_80_character_function_key_is_refused_on_the_full_name(project):
    name = "f" * 80
    append(project, DEFAULTS, f'[functions.{name}]\nhandler = "hello.handler"')
    refused(project, DEFAULTS, f"functions.{name}", "Lambda function name", "64", args=("--foundation",))


def test_function_key_that_fits_alone_but_not_with_the_prefix_is_refused(project):
    name = "g" * 60  # 60 <= 64, but "fixture-dev-" + 60 = 72
    append(project, DEFAULTS, f'[functions.{name}]\nhandler = "hello.handler"')
    refused(project, DEFAULTS, f"functions.{name}", "72 characters", args=("--foundation",))


def test_long_table_name_is_refused(project):
    name = "t" * 250
    append(project, DEFAULTS, f'[tables.{name}]\npartition_key = "pk"')
    refused(project, DEFAULTS, f"tables.{name}", "DynamoDB table name", args=("--foundation",))


def test_derived_artifact_bucket_too_long_for_its_access_log_bucket_is_refused(project):
    text = (project / DEFAULTS).read_text().replace('name = "fixture"', 'name = "twentyone-chars-app-x"')
    (project / DEFAULTS).write_text(text)
    env_dir = project / "terraform/envs/prod-eu-central"  # 21 + 1 + 15 + "-artifacts-" + 12 digits + "-access-logs" = 72
    env_dir.mkdir()
    (env_dir / "env.toml").write_text((project / ENV_TOML).read_text())
    refused(project, DEFAULTS, "app.name", "access-log bucket", args=("--foundation",), env="prod-eu-central")


def test_explicit_artifact_bucket_too_long_for_its_access_log_bucket_is_refused(project):
    append(project, ENV_TOML, f'[artifacts]\nbucket = "{"b" * 55}"')
    refused(project, ENV_TOML, "artifacts.bucket", "access-log bucket", args=("--foundation",))


def test_reserved_lambda_environment_variable_is_refused(project):
    append(project, DEFAULTS, '[functions.hello.environment]\nAWS_REGION = "us-east-1"')
    refused(project, DEFAULTS, "functions.hello.environment.AWS_REGION", "reserves")


def test_lambda_environment_over_4_kb_is_refused(project):
    append(project, ENV_TOML, f'[functions.hello.environment]\nBIG = "{"v" * 4000}"\nMORE = "{"w" * 200}"')
    refused(project, ENV_TOML, "functions.hello.environment", "4096")


def test_tag_value_with_characters_aws_refuses_is_refused(project):
    append(project, ENV_TOML, '[app]\nowner = "team<script>"')
    refused(project, ENV_TOML, "app.owner")


def test_ssm_parameter_name_with_empty_level_is_refused(project):
    append(project, DEFAULTS, '[parameters."a//b"]\nvalue = "x"')
    refused(project, DEFAULTS, "parameters.a//b")


@pytest.mark.parametrize(("length", "code"), [(64, 0), (65, 2)])
def test_function_name_limit_is_exactly_awss(project, length, code):
    name = "h" * (length - len("fixture-dev-"))
    append(project, DEFAULTS, f'[functions.{name}]\nhandler = "hello.handler"')
    if code:
        refused(project, DEFAULTS, f"functions.{name}", f"{length} characters", args=("--foundation",))
    else:
        run = deployctl(project, "render", "--env", "dev", "--foundation")
        assert run.returncode == 0, run.stderr


def test_environment_folder_name_aws_refuses_is_refused(project):
    env_dir = project / "terraform/envs/Dev_Eu"
    env_dir.mkdir()
    (env_dir / "env.toml").write_text((project / ENV_TOML).read_text())
    before = snapshot(project)
    run = deployctl(project, "render", "--env", "Dev_Eu")
    assert run.returncode == 2 and run.stderr.startswith(f"error: {env_dir}: environment name 'Dev_Eu'"), run.stderr
    assert snapshot(project) == before


def test_a_name_another_env_makes_too_is_refused(project):
    # <app>-dev + function "eu-x" == <app>-dev-eu + function "x": one account, one role name, two envs
    env_dir = project / "terraform/envs/dev-eu"
    env_dir.mkdir()
    (env_dir / "env.toml").write_text((project / ENV_TOML).read_text())
    (env_dir / "artifacts.json").write_text((project / MANIFEST).read_text().replace('"env": "dev"', '"env": "dev-eu"'))
    append(project, DEFAULTS, '[functions.x]\nhandler = "hello.handler"')
    append(project, ENV_TOML, '[functions.eu-x]\nhandler = "hello.handler"')
    refused(project, ENV_TOML, "functions.eu-x", "fixture-dev-eu-x", "dev-eu", args=("--foundation",))
    run = deployctl(project, "render", "--env", "dev-eu", "--foundation")  # the other side sees it too
    assert run.returncode == 2 and "fixture-dev-eu-x" in run.stderr and "'dev'" in run.stderr, run.stderr
