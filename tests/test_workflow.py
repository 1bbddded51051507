"""The example GitHub workflow: OIDC only, apply re-plans and requires the reviewed changes, commands exist."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest
import yaml

from deployctl.cli import cli
from deployctl.config import Settings

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "deploy.yml"


@pytest.fixture(scope="module")
def wf():
    return yaml.safe_load(WORKFLOW.read_text())


def triggers(wf) -> dict:
    return wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(job) -> list[dict]:
    return job.get("steps", [])


def deployctl_commands(script: str) -> list[list[str]]:
    """Every `deployctl ...` invocation in a shell script, with ${{ }} expressions replaced by a word."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "X", script).replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        tokens = list(shlex.shlex(line, posix=True, punctuation_chars=True))
        for i, tok in enumerate(tokens):
            if tok == "deployctl" or tok.endswith("/deployctl"):
                args = []
                for t in tokens[i + 1 :]:
                    if t in {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>&1"} or set(t) <= set("|&;<>"):
                        break
                    args.append(t)
                found.append(args)
    return found


def parse(args: list[str]):
    """Parse like `deployctl ARGS` would; returns the subcommand's context (UsageError if it does not parse)."""
    ctx = cli.make_context("deployctl", list(args), obj=Settings())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2 deprecates protected_args
        remaining = [*ctx.protected_args, *ctx.args]
    name, cmd, rest = cli.resolve_command(ctx, remaining)
    assert cmd is not None, args
    return cmd.make_context(name, rest, parent=ctx)


def test_triggers_and_jobs(wf):
    on = triggers(wf)
    assert set(on) == {"pull_request", "push", "schedule"}
    assert on["push"]["branches"] == ["main"]
    jobs = wf["jobs"]
    assert jobs["plan"]["if"].strip() == "github.event_name == 'pull_request'"
    assert "github.event_name == 'push'" in jobs["apply"]["if"]
    assert "check" in jobs["plan"]["needs"] and "check" in jobs["apply"]["needs"]


def test_aws_access_is_oidc_only(wf):
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
    assert "AWS_ACCESS_KEY_ID" not in text and "secrets." not in text
    assert wf["permissions"] == {"contents": "read"}
    for name, job in wf["jobs"].items():
        creds = [s for s in steps(job) if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials")]
        if not creds:
            continue
        assert job["permissions"]["id-token"] == "write", name
        for s in creds:
            assert re.match(r"\$\{\{ vars(\.|\[)", s["with"]["role-to-assume"]), name


def test_oidc_subjects_match_the_ci_identity_roles(wf):
    """The plan job runs outside any GitHub environment (subject repo:R:pull_request, the plan role's);
    the apply job inside the env's environment (subject repo:R:environment:ENV, the apply role's)."""
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]
    assert "environment" not in plan
    include = plan["strategy"]["matrix"]["include"]
    assert {row["env"]: row["plan_role"] for row in include} == {
        "dev": "PLAN_ROLE_ARN_DEV",
        "prod": "PLAN_ROLE_ARN_PROD",
    }
    (plan_creds,) = [s for s in steps(plan) if str(s.get("uses", "")).startswith("aws-actions/")]
    assert plan_creds["with"]["role-to-assume"] == "${{ vars[matrix.plan_role] }}"
    (apply_creds,) = [s for s in steps(apply) if str(s.get("uses", "")).startswith("aws-actions/")]
    assert apply_creds["with"]["role-to-assume"] == "${{ vars.APPLY_ROLE_ARN }}"
    assert apply["environment"] == "${{ matrix.env }}"
    root = (Path(__file__).resolve().parents[1] / "terraform/envs/dev/main.tf").read_text()
    assert re.search(r'plan_subjects\s*=\s*\["pull_request", "ref:refs/heads/main"\]', root)
    assert re.search(r'apply_subjects\s*=\s*\["environment:\$\{var.environment\}"\]', root)


def test_apply_replans_and_requires_the_reviewed_changes(wf):
    """The PR run uploads only the reviewed summary; the apply job plans again from the merged commit and
    refuses unless that plan makes exactly the reviewed changes (the attack side: tests/security/test_apply_attacks.py)."""
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]
    (upload,) = [s for s in steps(plan) if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload["with"]["path"].rstrip("/") == "reviewed"
    assert upload["with"]["name"] == "reviewed-plan-${{ matrix.env }}-${{ github.event.pull_request.head.sha }}"
    keep = next(s for s in steps(plan) if "reviewed/" in s.get("run", ""))
    assert "summary.json" in keep["run"] and "tfplan" not in keep["run"] and "plan.json" not in keep["run"]
    download = next(s for s in steps(apply) if "gh run download" in s.get("run", ""))
    assert '--name "reviewed-plan-$ENV_NAME-$head_sha"' in download["run"] and "--dir reviewed" in download["run"]
    runs = [s.get("run", "") for s in steps(apply)]
    commands = [(i, args) for i, r in enumerate(runs) for args in deployctl_commands(r)]
    (replan,) = [(i, a) for i, a in commands if a[0] == "plan"]
    (applied,) = [(i, a) for i, a in commands if a[0] == "apply"]
    assert runs.index(download["run"]) < replan[0] < applied[0]
    ctx = parse(replan[1])
    assert str(ctx.params["expect"]) == "reviewed/summary.json"
    assert not any("--allow-destroy" in r for r in runs)
    assert apply["environment"] == "${{ matrix.env }}"  # prod's reviewers are the confirmation behind --yes


def test_every_deployctl_command_exists_with_its_options(wf):
    commands = []
    for job in wf["jobs"].values():
        for s in steps(job):
            commands += deployctl_commands(s.get("run", ""))
    names = {args[0] for args in commands}
    assert {"check", "plan", "apply", "outputs"} <= names
    for args in commands:
        try:
            parse(args)  # raises on an unknown command or option, or a missing value
        except click.UsageError as exc:
            pytest.fail(f"`deployctl {' '.join(args)}` does not parse: {exc}")


def test_the_command_parser_catches_unknown_options():
    (args,) = deployctl_commands('.venv/bin/deployctl plan --env "x" --no-such-flag | tee out')
    with pytest.raises(click.UsageError):
        parse(args)
    with pytest.raises(click.UsageError):
        parse(["deploy-everything"])


# ---- the field's own linters: zizmor (offline audits) and actionlint, 0 findings ------------

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version(wf):
    lines = WORKFLOW.read_text().splitlines()
    uses = [line for line in lines if re.match(r"^\s*(- )?uses:", line)]
    assert uses
    for line in uses:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        assert SHA_PIN.match(ref.strip()), line
        assert re.fullmatch(r"\s*v\d+\.\d+\.\d+\s*", comment), f"version comment missing: {line}"


def test_checkout_never_persists_credentials(wf):
    for name, job in wf["jobs"].items():
        for s in steps(job):
            if str(s.get("uses", "")).startswith("actions/checkout@"):
                assert s.get("with", {}).get("persist-credentials") is False, name


def _tool(name: str) -> str:
    import shutil
    import sys

    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (it is in the `test` extra: pip install -e '.[test]')")
    return found


def test_zizmor_offline_reports_no_findings():
    import subprocess

    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    assert json.loads(proc.stdout) == [], proc.stdout


def test_actionlint_reports_no_findings():
    import subprocess

    proc = subprocess.run(
        [_tool("actionlint"), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_scheduled_drift_check_uses_the_read_only_plan_role_and_reports_in_the_summary(wf):
    """Daily cron; per env; the plan role (subject ref:refs/heads/main, no environment); drift fails the job."""
    (cron,) = triggers(wf)["schedule"]
    assert len(cron["cron"].split()) == 5
    job = wf["jobs"]["drift"]
    assert job["if"].strip() == "github.event_name == 'schedule'" and "environment" not in job
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert {row["env"] for row in job["strategy"]["matrix"]["include"]} == {"dev", "prod"}
    (creds,) = [s for s in steps(job) if str(s.get("uses", "")).startswith("aws-actions/")]
    assert creds["with"]["role-to-assume"] == "${{ vars[matrix.plan_role] }}"
    run = next(s for s in steps(job) if s.get("name") == "drift")
    assert ["drift", "--env", "$ENV_NAME"] in deployctl_commands(run["run"]) and "pipefail" in run["run"]
    summary = next(s for s in steps(job) if s.get("name") == "job summary")
    assert summary["if"] == "always()" and "GITHUB_STEP_SUMMARY" in summary["run"]
    for wired in (wf["jobs"]["plan"], wf["jobs"]["apply"]):
        assert "schedule" not in wired["if"]  # a scheduled run plans and applies nothing
