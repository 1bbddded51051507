"""Plan summaries from recorded `terraform show -json` documents, and the prod apply guard."""

from __future__ import annotations

import io
import json

import pytest

from deployctl.config import load_env
from deployctl.errors import Refused
from deployctl.infra import pipeline, plan
from deployctl.ui import UI
from tf_helpers import FIXTURES, copy_project

PLANS = FIXTURES / "plans"


def load(name: str) -> dict:
    return json.loads((PLANS / name).read_text())


def test_summary_counts_every_kind_of_change():
    s = plan.summarize(load("prod_replace_delete.json"))
    assert s["counts"] == {"create": 1, "update": 2, "replace": 2, "delete": 1, "forget": 0, "read": 0,
                           "no-op": 1}
    by_address = {c["address"]: c for c in s["changes"]}
    table = by_address['module.tables["items"].aws_dynamodb_table.this']
    assert table["action"] == "replace" and table["stateful"] and table["dangerous"]
    assert table["forced_by"] == ["hash_key"]
    assert table["reason"] == "replace_because_cannot_update"
    assert by_address["module.kms.aws_kms_key.this"]["action"] == "delete"
    permission = by_address["module.api.aws_lambda_permission.invoke"]
    assert permission["action"] == "replace" and not permission["dangerous"]  # create_before_destroy order too
    assert by_address['aws_ssm_parameter.secure["api-token"]']["action"] == "update"
    assert "data.aws_caller_identity.current" not in by_address  # reads are not changes
    assert "module.api.aws_cloudwatch_log_group.access" not in by_address  # no-op
    assert s["dangerous"] == ['module.tables["items"].aws_dynamodb_table.this', "module.kms.aws_kms_key.this"]
    assert s["outputs_changed"] == ["api_url"]
    assert s["has_changes"]


def test_summary_never_carries_values():
    doc = load("prod_replace_delete.json")
    text = json.dumps(plan.summarize(doc))
    assert "deployctl-demo-prod-items" not in text  # attribute values stay in the (secret) plan JSON
    assert "execute-api" not in text


def test_no_changes():
    s = plan.summarize(load("no_changes.json"))
    assert not s["has_changes"] and s["changes"] == [] and s["dangerous"] == []
    assert plan.summary_text(s) == "Plan: no changes."


def test_summary_text_highlights_stateful_destroys_in_red(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    ui = UI(out=io.StringIO())
    text = plan.summary_text(plan.summarize(load("prod_replace_delete.json")), lambda t, *s: ui.style(t, *s))
    lines = text.splitlines()
    assert lines[0] == "Plan: 1 to create, 2 to update, 2 to replace, 1 to delete."
    red = [ln for ln in lines if ln.startswith("\x1b[31;1m")]
    assert any("aws_dynamodb_table.this" in ln and "forced by hash_key" in ln for ln in red)
    assert any("module.kms.aws_kms_key.this" in ln for ln in red)
    assert not any("aws_lambda_permission" in ln for ln in red)  # replaced, but stateless: yellow
    assert any("aws_lambda_permission" in ln and ln.startswith("\x1b[33m") for ln in lines)
    plain = plan.summary_text(plan.summarize(load("prod_replace_delete.json")))
    assert "\x1b[" not in plain and "STATEFUL" in plain


@pytest.mark.parametrize(
    "actions,expected",
    [(["create"], "create"), (["update"], "update"), (["delete"], "delete"), (["delete", "create"], "replace"),
     (["create", "delete"], "replace"), (["read"], "read"), (["forget"], "forget"), (["no-op"], "no-op"),
     ([], "no-op")],
)
def test_classify(actions, expected):
    assert plan.classify(actions) == expected


# -- the apply guard of protected environments ----------------------------------------------


@pytest.fixture
def envs(tmp_path):
    root = copy_project("project", tmp_path)
    return load_env("dev", root), load_env("prod", root)


def test_prod_destroying_state_needs_allow_destroy(envs):
    _, prod = envs
    summary = plan.summarize(load("prod_replace_delete.json"))
    with pytest.raises(Refused) as err:
        pipeline.apply_guard(prod, summary, UI(assume_yes=True, err=io.StringIO()), allow_destroy=False)
    assert "aws_dynamodb_table" in err.value.message and "--allow-destroy" in err.value.hint
    # with --allow-destroy it still needs the confirmation (here: --yes); the summary is shown first
    err_stream = io.StringIO()
    pipeline.apply_guard(prod, summary, UI(assume_yes=True, err=err_stream), allow_destroy=True)
    assert "aws_kms_key" in err_stream.getvalue()


def test_prod_needs_confirmation(envs, monkeypatch):
    _, prod = envs
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    summary = plan.summarize(load("no_changes.json"))
    with pytest.raises(Refused) as err:
        pipeline.apply_guard(prod, summary, UI(err=io.StringIO()), allow_destroy=False)
    assert "confirmation" in err.value.message


def test_unprotected_env_applies_without_questions(envs):
    dev, _ = envs
    summary = plan.summarize(load("prod_replace_delete.json"))
    pipeline.apply_guard(dev, summary, UI(err=io.StringIO()), allow_destroy=False)  # no exception, no prompt
