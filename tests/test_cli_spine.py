"""The spine: command set, error model, env config loading, exit codes, lazy imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deployctl.cli import cli
from deployctl.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["local", "event", "invoke", "package", "publish-lambda", "promote", "rollback", "rollout", "render", "check",
            "plan", "apply", "outputs", "bootstrap", "up", "destroy", "verify", "sbom", "secret", "logs", "status", "drift",
            "prune", "doctor"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's env configuration in a temp dir (safe to break)."""
    envs = tmp_path / "terraform" / "envs"
    envs.mkdir(parents=True)
    shutil.copy(ROOT / "terraform/envs/defaults.toml", envs / "defaults.toml")
    for env in ("dev", "staging", "prod"):
        (envs / env).mkdir()
        shutil.copy(ROOT / f"terraform/envs/{env}/env.toml", envs / env / "env.toml")
    return tmp_path


def invoke(args: list[str], **env: str):
    runner = CliRunner()
    return runner.invoke(cli, args, obj=Settings.from_environ(env), env=env, catch_exceptions=False)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_help_lists_every_command_with_a_purpose():
    result = invoke(["--help"])
    assert result.exit_code == 0
    listed = {}
    in_commands = False
    for line in result.output.splitlines():
        if line.startswith("Commands:"):
            in_commands = True
            continue
        if in_commands and line.startswith("  ") and not line.startswith("    "):
            name, _, purpose = line.strip().partition(" ")
            listed[name] = purpose.strip()
        elif in_commands and not line.strip():
            break
    assert list(listed) == COMMANDS
    assert all(listed.values()), listed
    for option in ("--env", "--json", "--debug", "--terraform-bin"):
        assert option in result.output


def test_unknown_env_exits_2_with_one_line_naming_known_envs():
    result = invoke(["plan", "--env", "nosuch"])
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "nosuch" in lines[0] and "dev, prod, staging" in lines[0]
    assert "Traceback" not in result.output


def test_env_can_come_from_deployctl_env():
    result = invoke(["plan"], DEPLOYCTL_ENV="nosuch")
    assert result.exit_code == 2
    assert "unknown environment 'nosuch'" in result.stderr


def test_missing_env_says_how_to_give_one():
    result = invoke(["plan"])
    assert result.exit_code == 2
    assert "--env" in result.stderr and "DEPLOYCTL_ENV" in result.stderr


def test_wrong_type_in_env_file_exits_2_naming_file_and_key(project: Path):
    env_file = project / "terraform/envs/prod/env.toml"
    env_file.write_text(env_file.read_text().replace("throttle_rate_limit = 500", 'throttle_rate_limit = "fast"'))
    result = invoke(["--root", str(project), "plan", "--env", "prod"])
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert str(env_file) in lines[0]
    assert "api.throttle_rate_limit" in lines[0]
    assert "expected a number" in lines[0] and "'fast'" in lines[0]


def test_wrong_type_in_defaults_names_the_defaults_file(project: Path):
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text().replace("memory_mb = 256", 'memory_mb = "big"'))
    result = invoke(["--root", str(project), "render", "--env", "dev"])
    assert result.exit_code == 2
    assert str(defaults) in result.stderr
    assert "functions.users.memory_mb" in result.stderr


def test_unknown_key_is_an_error_not_a_silent_default(project: Path):
    env_file = project / "terraform/envs/dev/env.toml"
    env_file.write_text(env_file.read_text().replace("retention_days = 7", "retention_days = 7\nretention_dayz = 3"))
    result = invoke(["--root", str(project), "render", "--env", "dev"])
    assert result.exit_code == 2
    assert "logs.retention_dayz" in result.stderr and "unknown key" in result.stderr


def test_invalid_toml_is_a_config_error(project: Path):
    env_file = project / "terraform/envs/staging/env.toml"
    env_file.write_text("[aws\nregion = 'x'\n")
    result = invoke(["--root", str(project), "render", "--env", "staging"])
    assert result.exit_code == 2
    assert str(env_file) in result.stderr and "TOML" in result.stderr


def test_json_mode_puts_a_machine_readable_error_on_stdout():
    result = invoke(["--json", "plan", "--env", "nosuch"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc == {"command": "plan", "env": "nosuch", "ok": False, "error": doc["error"]}
    assert doc["error"]["error"] == "unknown_env" and doc["error"]["exit_code"] == 2


def test_bad_flags_and_commands_are_one_line_usage_errors_too():
    cases = [
        (["--bogus"], "error: No such option '--bogus'. (see 'deployctl --help')"),
        (["nosuchcmd"], "error: No such command 'nosuchcmd'. (see 'deployctl --help')"),
        (["promote", "--env", "dev"], "error: Missing option '--function'. (see 'deployctl promote --help')"),
        (["promote", "--weight"], "error: Option '--weight' requires an argument. (see 'deployctl promote --help')"),
        (["promote", "--function", "users", "--weight", "0"],
         "error: Invalid value for '--weight': 0 is not in the range 1<=x<=99. (see 'deployctl promote --help')"),
    ]
    for args, line in cases:
        result = invoke(args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr == line + "\n", args
        assert result.stdout == ""
        as_json = invoke([*args, "--json"] if args != ["promote", "--weight"] else ["--json", *args])
        assert as_json.exit_code == 2
        doc = json.loads(as_json.stdout)
        assert doc["ok"] is False and "result" not in doc
        err = doc["error"]
        assert err["error"] == "usage" and err["exit_code"] == 2 and err["hint"].startswith("see 'deployctl")
    plain = invoke([])  # no arguments at all: the help, as before
    assert "Usage: deployctl" in plain.output or "Usage: cli" in plain.output


def test_debug_adds_the_traceback():
    result = invoke(["--debug", "plan", "--env", "nosuch"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert "UnknownEnvironment" in result.stderr


def test_precedence_flag_over_env_var_over_env_file_over_defaults(project: Path):
    from deployctl.config import load_env

    defaults_only = load_env("dev", project)
    assert Settings().terraform(defaults_only) == "terraform"  # defaults.toml

    env_file = project / "terraform/envs/dev/env.toml"
    env_file.write_text(env_file.read_text() + '\n[tools]\nterraform = "tofu"\n')
    cfg = load_env("dev", project)
    assert Settings().terraform(cfg) == "tofu"  # env file over defaults
    from_env = Settings.from_environ({"DEPLOYCTL_TERRAFORM": "/opt/tf"})
    assert from_env.terraform(cfg) == "/opt/tf"  # env var over env file
    from_env.terraform_bin = "/usr/bin/terraform"  # what --terraform-bin does
    assert from_env.terraform(cfg) == "/usr/bin/terraform"


def test_env_file_overrides_defaults_and_tables_merge_key_by_key():
    from deployctl.config import load_env

    prod = load_env("prod", ROOT)
    assert prod.tables["items"]["billing_mode"] == "PROVISIONED"
    assert prod.tables["items"]["sort_key"] == "sk"  # merged from defaults, not replaced
    assert prod.get("logs.retention_days") >= 30
    assert prod.where("tables.items.billing_mode").endswith("prod/env.toml")
    assert prod.where("tables.items.sort_key").endswith("defaults.toml")


def test_function_referring_to_unknown_table_is_a_config_error(project: Path):
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text().replace('tables_write = ["items"]', 'tables_write = ["itemz"]'))
    result = invoke(["--root", str(project), "render", "--env", "dev"])
    assert result.exit_code == 2
    assert "functions.create-item.tables_write" in result.stderr and "'itemz'" in result.stderr


def test_every_shipped_env_config_is_valid():
    from deployctl.config import known_envs, load_env

    assert known_envs(ROOT) == ["dev", "prod", "staging"]
    for env in known_envs(ROOT):
        cfg = load_env(env, ROOT)
        assert len(cfg.account_id) == 12
        assert set(cfg.functions) == {"create-item", "get-items", "health-check", "users"}


# ---- through a real process -------------------------------------------------

def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYCTL_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "deployctl", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=120)


def test_subprocess_help_and_unknown_env():
    helped = run_cli("--help")
    assert helped.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in helped.stdout
    bad = run_cli("plan", "--env", "nosuch")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "known environments: dev, prod, staging" in bad.stderr
    assert bad.stdout == ""


def test_subprocess_wrong_type_exits_2(project: Path):
    env_file = project / "terraform/envs/dev/env.toml"
    env_file.write_text(env_file.read_text().replace('account_id = "111111111111"', "account_id = 111111111111"))
    proc = run_cli("plan", "--env", "dev", env={"DEPLOYCTL_ROOT": str(project)})
    assert proc.returncode == 2
    assert str(env_file) in proc.stderr and "aws.account_id" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_imports_no_heavy_modules():
    code = (
        "import sys, json\n"
        "from deployctl.cli import main\n"
        "rc = main(['--help'])\n"
        "heavy = ['boto3', 'botocore', 'checkov', 'jinja2', 'moto', 'flask', 'werkzeug']\n"
        "print(json.dumps({'rc': rc, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc == {"rc": 0, "loaded": []}


def test_doctor_json_has_one_entry_per_dependency(tmp_path: Path):
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    env = {"HOME": str(fake_home), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "DEPLOYCTL_TERRAFORM": "no-such-terraform-binary"}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", "deployctl", "doctor", "--json"], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=180)
    envelope = json.loads(proc.stdout)
    doc = envelope["result"]
    assert set(doc["checks"]) >= {"python", "terraform", "checkov", "boto3", "click", "jinja2", "aws-identity"}
    tf = doc["checks"]["terraform"]
    assert tf["ok"] is False and "no-such-terraform-binary" in tf["detail"] and "install" in tf["fix"]
    assert doc["checks"]["aws-identity"]["ok"] is False
    assert "no AWS credentials" in doc["checks"]["aws-identity"]["detail"]
    # terraform is required: exit 3 (tool missing) as the README says; the envelope says ok = false
    assert doc["ok"] is False and proc.returncode == 3
    assert envelope["ok"] is False and envelope["error"]["exit_code"] == 3
    assert envelope["error"]["error"] == "tool_missing"
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [proc.stderr.strip()]


def test_doctor_reports_the_aws_identity_from_the_standard_chain(aws_env):
    proc = subprocess.run([sys.executable, "-m", "deployctl", "doctor", "--json"], capture_output=True, text=True,
                          env=aws_env, cwd=ROOT, timeout=180)
    ident = json.loads(proc.stdout)["result"]["checks"]["aws-identity"]
    assert ident["ok"] is True and ident["version"] == "123456789012"  # moto's default account


def test_secure_parameter_value_in_config_is_refused(project: Path):
    defaults = project / "terraform/envs/defaults.toml"
    defaults.write_text(defaults.read_text() + '\n[parameters.api-key]\nsecure = true\nvalue = "s3cr3t-value"\n')
    result = invoke(["--root", str(project), "render", "--env", "dev"])
    assert result.exit_code == 2
    assert "parameters.api-key.value" in result.stderr and "put-parameter" in result.stderr
    assert "s3cr3t-value" not in result.output + result.stderr
