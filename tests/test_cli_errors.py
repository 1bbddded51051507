"""User errors are one line with their exit code; project discovery; one JSON envelope per command.

Every case runs through click's CliRunner and through a real `python -m deployctl`
process, with and without --json: exactly one `error:` line on stderr, no traceback,
the documented exit code, and with --json one parseable envelope on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from deployctl.cli import cli
from deployctl.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_PATH = str(ROOT / "cli")
MOTO_ACCOUNT = "123456789012"  # moto's default account


def make_project(dest: Path, *, dev_account: str | None = None) -> Path:
    """A deployctl project: a copy of this repo's terraform/ (env roots keep their symlinks), lambda_src/, api/."""
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate*", "deployctl.auto.tfvars.json", "backend.hcl",
                                    ".terraform.lock.hcl", "artifacts.json", "__pycache__")
    for name in ("terraform", "lambda_src", "api"):
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=ignore)
    if dev_account is not None:
        env_file = dest / "terraform/envs/dev/env.toml"
        env_file.write_text(env_file.read_text().replace('account_id = "111111111111"', f'account_id = "{dev_account}"'))
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def no_aws(tmp: Path) -> dict[str, str | None]:
    """Environment overrides: no credentials anywhere in the standard chain, no DEPLOYCTL_* settings."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("AWS_", "DEPLOYCTL_"))}
    env.update({"HOME": str(tmp), "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_REGION": "eu-west-1"})
    return env


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def via_runner(args: list[str], cwd: Path, env: dict, monkeypatch) -> Outcome:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(cli, args, obj=Settings.from_environ({k: v for k, v in env.items() if v is not None}),
                                env=env, catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def via_process(args: list[str], cwd: Path, env: dict, pythonpath: list[str] | None = None) -> Outcome:
    full = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    full["PYTHONPATH"] = os.pathsep.join([*(pythonpath or []), CLI_PATH])
    proc = subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_one_error(out: Outcome, *, code: int, needle: str, command: str | None, json_mode: bool) -> str:
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    assert out.code == code, text
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert needle in errors[0], errors[0]
    if json_mode:
        doc = json.loads(out.stdout)  # exactly one document: trailing text would not parse
        # a group's subcommand is named in full ("secret ensure"); its first word is the group
        assert doc["ok"] is False and (doc["command"] == command
                                       or (command and doc["command"].split()[0] == command)), doc
        assert doc["error"]["exit_code"] == code and doc["error"]["message"], doc
    else:
        assert out.stdout == ""
    return errors[0]


# -- the cases ----------------------------------------------------------------------------------


@dataclass
class Case:
    args: list[str]
    code: int
    needle: str
    setup: Callable[[Path], None] = lambda project: None
    outside: bool = False  # run from an empty directory instead of the project
    inject: bool = False  # make render raise an unexpected exception (a bug)
    not_root: bool = False  # permission cases cannot fail for root
    extra: list[str] = field(default_factory=list)  # text that must NOT be in the line

    @property
    def command(self) -> str:
        skip = False
        for arg in self.args:
            if skip:
                skip = False
            elif arg == "--root":
                skip = True
            elif not arg.startswith("-"):
                return arg
        raise AssertionError(self.args)


def _append_latin1(rel: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        with (project / rel).open("ab") as fh:
            fh.write(b"\n# caf\xe9 (latin-1)\n")
    return setup


def _replace_with_dir(rel: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        path = project / rel
        path.unlink(missing_ok=True)
        path.mkdir()
    return setup


def _write(rel: str, text: str) -> Callable[[Path], None]:
    return lambda project: (project / rel).write_text(text)


CASES = {
    "output-dir-is-a-file": Case(["package", "--output-dir", "afile"], 2, "afile is not a directory",
                                 setup=_write("afile", "x")),
    "non-utf8-env-toml": Case(["render", "--env", "dev", "--foundation"], 2, "dev/env.toml: not UTF-8",
                              setup=_append_latin1("terraform/envs/dev/env.toml")),
    "non-utf8-defaults-toml": Case(["package"], 2, "defaults.toml: not UTF-8",
                                   setup=_append_latin1("terraform/envs/defaults.toml")),
    "missing-env-toml": Case(["render", "--env", "staging"], 2, "environment 'staging' has a folder but no env.toml",
                             setup=lambda p: (p / "terraform/envs/staging/env.toml").unlink()),
    "env-toml-is-a-directory": Case(["render", "--env", "staging"], 2, "staging/env.toml: is not a regular file",
                                    setup=_replace_with_dir("terraform/envs/staging/env.toml")),
    "no-aws-credentials": Case(["promote", "--env", "dev", "--function", "users"], 2,
                               "no AWS credentials found in the standard chain", extra=["env.toml"]),
    "malformed-manifest": Case(["render", "--env", "dev"], 2, "dev/artifacts.json: not valid JSON",
                               setup=_write("terraform/envs/dev/artifacts.json", '{"schema": 1,')),
    "manifest-is-a-directory": Case(["render", "--env", "dev"], 2, "artifacts.json: is a directory",
                                    setup=_replace_with_dir("terraform/envs/dev/artifacts.json")),
    "manifest-of-another-shape": Case(["render", "--env", "dev"], 2, "not an artifact manifest",
                                      setup=_write("terraform/envs/dev/artifacts.json", "[1, 2]")),
    "root-does-not-exist": Case(["--root", "nowhere", "render", "--env", "dev"], 2, "--root nowhere: does not exist"),
    "root-without-a-project": Case(["--root", "lambda_src", "render", "--env", "dev"], 2,
                                   "--root lambda_src: holds no terraform/envs/defaults.toml"),
    "unknown-function": Case(["package", "--function", "nope"], 2, "unknown function 'nope'"),
    "outside-a-project": Case(["render", "--env", "dev"], 2, "no terraform/envs/defaults.toml found in", outside=True),
    "work-dir-blocked-by-a-file": Case(["package"], 1, "proj/.deployctl is not a directory (needed for",
                                       setup=_write(".deployctl", "not a directory")),
    "cache-blocked-by-a-file": Case(["package"], 1, ".deployctl/cache", setup=lambda p: (
        (p / ".deployctl").mkdir(), (p / ".deployctl/cache").write_text("x"))),
    "unreadable-env-toml": Case(["render", "--env", "dev", "--foundation"], 2, "dev/env.toml: permission denied",
                                setup=lambda p: (p / "terraform/envs/dev/env.toml").chmod(0), not_root=True),
    "unexpected-exception": Case(["render", "--env", "dev", "--foundation"], 1,
                                 "internal error: ZeroDivisionError: injected bug; re-run with --debug and report it",
                                 inject=True),
}

INJECT = ("import deployctl.infra.render as _r\n"
          "def _boom(*args, **kwargs):\n"
          "    raise ZeroDivisionError('injected bug')\n"
          "_r.render = _boom\n")


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("how", ["runner", "process"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_user_error_is_one_line_with_its_exit_code(name, how, json_mode, project, tmp_path, monkeypatch):
    case = CASES[name]
    if case.not_root and os.geteuid() == 0:
        pytest.skip("root reads any file: a permission error cannot happen")
    case.setup(project)
    cwd = project
    if case.outside:
        cwd = tmp_path / "elsewhere"
        cwd.mkdir()
    env = no_aws(tmp_path)
    args = (["--json"] if json_mode else []) + case.args
    if how == "runner":
        if case.inject:
            import deployctl.infra.render as render_mod

            def boom(*a, **k):
                raise ZeroDivisionError("injected bug")

            monkeypatch.setattr(render_mod, "render", boom)
        out = via_runner(args, cwd, env, monkeypatch)
    else:
        pythonpath = []
        if case.inject:  # a bug in a real process: sitecustomize patches render before deployctl runs
            hook = tmp_path / "hook"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(INJECT)
            pythonpath = [str(hook)]
        out = via_process(args, cwd, env, pythonpath)
    line = assert_one_error(out, code=case.code, needle=case.needle, command=case.command, json_mode=json_mode)
    for text in case.extra:
        assert text not in line, line


def test_debug_shows_the_traceback_of_an_unexpected_exception(project, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(INJECT)
    out = via_process(["--debug", "render", "--env", "dev", "--foundation"], project, no_aws(tmp_path), [str(hook)])
    assert out.code == 1
    assert "Traceback" in out.stderr and "ZeroDivisionError: injected bug" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1].startswith("error: internal error: ZeroDivisionError")


# -- project discovery --------------------------------------------------------------------------


def generic_args(name: str) -> list[str]:
    """``NAME [SUB] --env dev`` plus a dummy value for each required option/argument, so that a command
    added later (a group too) gets past click's parsing and reaches its project and env lookup."""
    import click

    cmd = cli.commands[name]
    args = [name]
    if isinstance(cmd, click.Group):
        sub = next(iter(cmd.commands))
        args.append(sub)
        cmd = cmd.commands[sub]
    names = {p.name for p in cmd.params}
    if "env" in names:
        args += ["--env", "dev"]
    for param in cmd.params:
        if param.required and isinstance(param, click.Option):
            args += [param.opts[0], "users"]
        elif param.required and isinstance(param, click.Argument):
            args.append("users")
    return args


def needs_project_args() -> dict[str, list[str]]:
    """Arguments that make each command need the project (every registered command but doctor without --env)."""
    special = {"local": ["local", "--port", "0"], "package": ["package"], "check": ["check"],
               "doctor": ["doctor", "--env", "dev"]}
    return {name: special.get(name) or generic_args(name) for name in cli.commands}


@pytest.mark.parametrize("name", list(cli.commands))
def test_outside_a_project_every_command_that_needs_one_exits_2_with_one_line(name, tmp_path, monkeypatch):
    """No fallback to the checkout deployctl was installed from (PYTHONPATH points into this one)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = no_aws(tmp_path)
    args = needs_project_args()[name]
    for out in (via_process(args, elsewhere, env), via_runner(["--json", *args], elsewhere, env, monkeypatch)):
        line = assert_one_error(out, code=2, needle="no terraform/envs/defaults.toml found in", command=name,
                                json_mode=bool(out.stdout))
        assert str(elsewhere.resolve()) in line and "--root DIR" in line and "DEPLOYCTL_ROOT" in line


def test_outside_a_project_help_version_and_doctor_still_work(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = no_aws(tmp_path)
    assert via_process(["--help"], elsewhere, env).code == 0
    assert via_process(["--version"], elsewhere, env).stdout.startswith("deployctl")
    doctor = via_process(["--json", "doctor"], elsewhere, env)
    doc = json.loads(doctor.stdout)
    assert doc["command"] == "doctor" and "python" in doc["result"]["checks"]
    assert "defaults.toml" not in doctor.stderr


def test_root_is_found_from_any_subdirectory_and_env_defaults_to_the_env_folder(project, tmp_path, monkeypatch):
    env = no_aws(tmp_path)
    (project / "terraform/envs/staging/sub/deeper").mkdir(parents=True)
    for cwd, expected in [(project / "lambda_src/items", None), (project / "terraform/envs/staging", "staging"),
                          (project / "terraform/envs/staging/sub/deeper", "staging"),
                          (project / "terraform/envs/prod", "prod")]:
        out = via_runner(["--json", "render", "--foundation"], cwd, env, monkeypatch)
        doc = json.loads(out.stdout)
        if expected is None:
            assert out.code == 2 and doc["error"]["error"] == "unknown_env", doc  # no env given
            assert "terraform/envs/<env>/" in doc["error"]["hint"]
        else:
            assert out.code == 0, out.stderr
            assert doc["env"] == expected
            assert Path(doc["result"]["tfvars"]).parent == project / "terraform/envs" / expected
    # the flag and DEPLOYCTL_ENV still win over the folder
    cwd = project / "terraform/envs/staging"
    assert json.loads(via_runner(["--json", "render", "--env", "dev", "--foundation"], cwd, env,
                                 monkeypatch).stdout)["env"] == "dev"
    assert json.loads(via_runner(["--json", "render", "--foundation"], cwd, {**env, "DEPLOYCTL_ENV": "prod"},
                                 monkeypatch).stdout)["env"] == "prod"
    # through a real process too
    proc = via_process(["--json", "render", "--foundation"], project / "terraform/envs/staging/sub", env)
    assert proc.code == 0 and json.loads(proc.stdout)["env"] == "staging"


def test_deployctl_root_variable_is_named_when_it_points_nowhere(project, tmp_path):
    out = via_process(["render", "--env", "dev"], project, {**no_aws(tmp_path), "DEPLOYCTL_ROOT": str(tmp_path)})
    line = assert_one_error(out, code=2, needle=f"DEPLOYCTL_ROOT {tmp_path}: holds no terraform/envs/defaults.toml",
                            command="render", json_mode=False)
    assert "--root" not in line.split("(")[0]


# -- one envelope for every command -------------------------------------------------------------

NO_TOOLS = ["--terraform-bin", "/nonexistent/terraform", "--checkov-bin", "/nonexistent/checkov"]
ENVELOPE_ARGS = {
    "package": ["package", "--function", "health-check"],
    "publish-lambda": ["publish-lambda", "--env", "dev", "--function", "health-check"],
    "promote": ["promote", "--env", "dev", "--function", "users", "--yes"],
    "rollback": ["rollback", "--env", "dev", "--function", "users", "--yes"],
    "render": ["render", "--env", "dev", "--foundation"],
    "check": [*NO_TOOLS, "check", "--env", "dev"],
    "plan": [*NO_TOOLS, "plan", "--env", "dev"],
    "apply": ["apply", "--env", "dev"],
    "outputs": [*NO_TOOLS, "outputs", "--env", "dev"],
    "bootstrap": ["bootstrap", "--env", "dev"],
    "doctor": ["doctor"],
}
EXPECT_OK = {"package", "render", "bootstrap", "local"}
ERROR_KEYS = {"error", "message", "where", "hint", "exit_code"}


def first_json_document(proc: subprocess.Popen, timeout: float = 90) -> dict | None:
    """Read stdout until it holds one complete JSON document (the envelope is pretty-printed)."""
    found: list[dict] = []

    def read() -> None:
        buf = ""
        for line in proc.stdout:
            buf += line
            try:
                found.append(json.loads(buf))
                return
            except json.JSONDecodeError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def run_local(project: Path, env: dict) -> tuple[int, dict | None, str]:
    full = {k: v for k, v in os.environ.items() if k not in env or env[k] is not None}
    full.update({k: v for k, v in env.items() if v is not None})
    full["PYTHONPATH"] = CLI_PATH
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "--json", "local", "--port", "0"], cwd=project,
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = first_json_document(proc)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return 0 if doc and doc.get("ok") else proc.returncode, doc, err


@pytest.mark.parametrize("name", list(cli.commands))
def test_every_command_prints_one_envelope_with_json(name, aws_env, tmp_path, monkeypatch):
    """Each registered command (a new one cannot escape: the default case runs it with --env dev and no tools)."""
    project = make_project(tmp_path / "proj", dev_account=MOTO_ACCOUNT)
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DEPLOYCTL_")}
    if name == "local":
        code, doc, err = run_local(project, env)
        assert doc is not None, err
    else:
        args = ENVELOPE_ARGS.get(name) or [*NO_TOOLS, *generic_args(name)]
        out = via_runner(["--json", *args], project, env, monkeypatch)
        code = out.code
        assert "Traceback" not in out.stderr, out.stderr
        doc = json.loads(out.stdout)  # one document, nothing else on stdout
    assert doc["command"].split()[0] == name and isinstance(doc["ok"], bool), doc  # "secret rotate" for a group
    assert "env" in doc and doc["env"] in (None, "dev"), doc
    if doc["ok"]:
        assert set(doc) == {"command", "env", "ok", "result"} and code == 0, doc
    else:
        assert set(doc) - {"result"} == {"command", "env", "ok", "error"}, doc
        assert set(doc["error"]) == ERROR_KEYS and doc["error"]["exit_code"] == code != 0, doc
    if name in EXPECT_OK:
        assert doc["ok"] is True, doc
    if name not in ("package", "doctor", "local"):
        assert doc["env"] == "dev", doc


# -- doctor -------------------------------------------------------------------------------------


def real_terraform() -> str | None:
    """A terraform/tofu >= 1.10 (plan's minimum): DEPLOYCTL_TEST_TERRAFORM, /usr/local/bin, or PATH."""
    from deployctl import tools

    for candidate in (os.environ.get("DEPLOYCTL_TEST_TERRAFORM"), "/usr/local/bin/terraform",
                      shutil.which("terraform"), shutil.which("tofu")):
        if candidate and tools.safe(tools.terraform_version, candidate, "1.10")[0]:
            return candidate
    return None


@pytest.mark.parametrize("account", ["111111111111", "987654321098"], ids=["placeholder", "another-account"])
def test_doctor_with_credentials_of_another_account_exits_like_plan(account, aws_env, tmp_path):
    terraform = real_terraform()
    if terraform is None:
        pytest.skip("no terraform >= 1.10 to get plan past its version check")
    project = make_project(tmp_path / "proj", dev_account=account)
    env = {k: None for k in os.environ if k.startswith("DEPLOYCTL_")}
    doctor = via_process(["--terraform-bin", terraform, "--json", "doctor", "--env", "dev"], project, env)
    plan = via_process(["--terraform-bin", terraform, "--json", "plan", "--env", "dev"], project, env)
    assert doctor.code == plan.code == 4, (doctor.stderr, plan.stderr)
    ddoc, pdoc = json.loads(doctor.stdout), json.loads(plan.stdout)
    assert ddoc["ok"] is False and ddoc["error"]["error"] == pdoc["error"]["error"] == "refused"
    ident = ddoc["result"]["checks"]["aws-identity"]
    assert ident["ok"] is False and ident["exit_code"] == 4
    assert f"account {MOTO_ACCOUNT}" in ident["detail"] and f"account {account}" in ident["detail"]
    for key in ("error", "message", "where", "exit_code"):  # the same refusal, word for word, naming the same file
        assert ddoc["error"][key] == pdoc["error"][key]
    account_check = ddoc["result"]["checks"]["account-id"]
    if account == "111111111111":  # flagged too, with the file and key to edit; the refusal still decides the code
        assert account_check["ok"] is False and account_check["exit_code"] == 2
        assert str(project / "terraform/envs/dev/env.toml") in account_check["detail"]
        assert "aws.account_id" in account_check["detail"] and "placeholder" in account_check["detail"]
        assert "also failed: account-id" in ddoc["error"]["hint"]
    else:
        assert account_check["ok"] is True
    for name in ("state-bucket", "kms-key", "artifact-bucket"):  # never probed in the wrong account
        assert ddoc["result"]["checks"][name]["skipped"] is True
    assert [line for line in doctor.stderr.splitlines() if line.startswith("error:")] == [doctor.stderr.strip()]


def tool_args() -> list[str]:
    args = []
    terraform = real_terraform()
    if terraform:
        args += ["--terraform-bin", terraform]
    checkov = ROOT / ".venv-checkov/bin/checkov"
    if checkov.exists():
        args += ["--checkov-bin", str(checkov)]
    return args


def test_doctor_flags_placeholder_account_ids_with_the_file_and_key(tmp_path, project):
    tools = tool_args()
    out = via_process([*tools, "--json", "doctor", "--env", "staging"], project, no_aws(tmp_path))
    doc = json.loads(out.stdout)
    check = doc["result"]["checks"]["account-id"]
    assert check["ok"] is False and "222222222222" in check["detail"]
    assert f"{project / 'terraform/envs/staging/env.toml'}: key 'aws.account_id'" in check["detail"]
    assert "set aws.account_id in" in check["fix"]
    creds = doc["result"]["checks"]["aws-identity"]
    assert creds["ok"] is False and "no AWS credentials found in the standard chain" in creds["detail"]
    if len(tools) == 4:  # both tools found: configuration (2) is the most serious problem
        assert out.code == 2 and doc["error"]["exit_code"] == 2
    # without --env: every env with a placeholder is named, as a warning
    plain = json.loads(via_process(["--json", "doctor"], project, no_aws(tmp_path)).stdout)
    warning = plain["result"]["checks"]["account-ids"]
    assert warning["required"] is False and warning["ok"] is False
    for env in ("dev", "staging", "prod"):
        assert str(project / f"terraform/envs/{env}/env.toml") in warning["detail"]


def test_doctor_env_checks_the_state_bucket_and_the_foundation(aws_env, tmp_path):
    project = make_project(tmp_path / "proj", dev_account=MOTO_ACCOUNT)
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DEPLOYCTL_")}
    tools_args = tool_args()

    def doctor() -> tuple[Outcome, dict]:
        out = via_process([*tools_args, "--json", "doctor", "--env", "dev"], project, env)
        return out, json.loads(out.stdout)

    out, doc = doctor()
    checks = doc["result"]["checks"]
    assert checks["aws-identity"]["ok"] is True and checks["account-id"]["ok"] is True  # moto's id is moto's account
    assert checks["state-bucket"]["ok"] is False and checks["state-bucket"]["fix"] == "run deployctl bootstrap --env dev"
    foundation = "run deployctl plan --env dev --foundation && deployctl apply --env dev"
    assert checks["kms-key"]["ok"] is False and checks["kms-key"]["fix"] == foundation
    assert "alias/deployctl-demo-dev" in checks["kms-key"]["detail"] or "alias/" in checks["kms-key"]["detail"]
    assert checks["artifact-bucket"]["ok"] is False and checks["artifact-bucket"]["fix"] == foundation
    assert out.code != 0 and doc["ok"] is False

    assert via_process(["bootstrap", "--env", "dev"], project, env).code == 0
    from deployctl.config import load_env
    from deployctl.naming import kms_alias

    cfg = load_env("dev", project)
    kms = boto3.client("kms", region_name=cfg.region)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=kms_alias(cfg), TargetKeyId=key)
    boto3.client("s3", region_name=cfg.region).create_bucket(
        Bucket=cfg.artifact_bucket(), CreateBucketConfiguration={"LocationConstraint": cfg.region})

    out, doc = doctor()
    checks = doc["result"]["checks"]
    for name in ("state-bucket", "kms-key", "artifact-bucket"):
        assert checks[name]["ok"] is True, checks[name]
    if len(tools_args) == 4:
        assert out.code == 0 and doc["ok"] is True, out.stderr


def test_doctor_exit_code_is_the_most_serious_failure():
    from deployctl.infra.doctor import Check, error, exit_code

    def failing(name: str, code: int) -> Check:
        return Check(name, True, False, detail=f"{name} broke", fix=f"fix {name}", exit_code=code)

    assert exit_code([Check("python", True, True)]) == 0
    assert exit_code([failing("state-bucket", 1), failing("account-id", 2)]) == 2
    assert exit_code([failing("account-id", 2), failing("terraform", 3)]) == 3
    assert exit_code([failing("terraform", 3), failing("aws-identity", 4), failing("state-bucket", 1)]) == 4
    optional = Check("moto", False, False, exit_code=3)
    assert exit_code([optional]) == 0  # warnings never fail doctor
    err = error([failing("terraform", 3), failing("aws-identity", 4)])
    assert err.exit_code == 4 and err.where == "doctor aws-identity"
    assert err.hint == "fix aws-identity; also failed: terraform"


def test_missing_credentials_are_not_blamed_on_env_toml(project, tmp_path, monkeypatch):
    out = via_runner(["--json", "publish-lambda", "--env", "dev"], project, no_aws(tmp_path), monkeypatch)
    doc = json.loads(out.stdout)
    assert out.code == 2 and doc["error"]["error"] == "no_credentials" and doc["error"]["where"] is None
    assert "AWS_PROFILE" in doc["error"]["hint"]
