"""Static checks of terraform/ (parsed with python-hcl2): the security properties
a future edit could silently drop, the module conventions, and the READMEs.

Runtime behaviour of the pure-locals files (OpenAPI rendering, dashboard,
naming) is tested with the real terraform binary in test_terraform_logic.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
MODULES = sorted(p for p in (TF / "modules").iterdir() if p.is_dir())
ENVS = sorted(p for p in (TF / "envs").iterdir() if (p / "env.toml").is_file())
MODULE_IDS = [p.name for p in MODULES]
ENV_IDS = [p.name for p in ENVS]
EXPECTED_MODULES = {
    "app_config",
    "artifact_bucket",
    "ci_identity",
    "dynamodb_table",
    "iam_boundary",
    "kms",
    "lambda_function",
    "lambda_layer",
    "monitoring",
    "rest_api",
}
ROOT_VARIABLES = {
    "layers",
    "alarms",
    "api",
    "app",
    "artifacts",
    "aws",
    "ci",
    "environment",
    "functions",
    "lambda",
    "logs",
    "parameters",
    "protection",
    "state",
    "tables",
}


# ---- parsing helpers ------------------------------------------------------------


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def clean(value):
    """hcl2's output without quotes around literals and without __meta__ keys."""
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return unquote(value)


def blocks(value) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    return [v for v in value or [] if isinstance(v, dict)]


class Config:
    """Every .tf file of one directory, merged."""

    def __init__(self, path: Path):
        self.path = path
        self.files: dict[str, dict] = {}
        self.text = ""
        self.resources: dict[tuple[str, str], dict] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.variables: dict[str, dict] = {}
        self.variable_order: dict[str, list[str]] = {}
        self.outputs: dict[str, dict] = {}
        self.output_order: dict[str, list[str]] = {}
        self.locals: dict = {}
        self.modules: dict[str, dict] = {}
        self.terraform: list[dict] = []
        self.providers: list[dict] = []
        for f in sorted(path.glob("*.tf")):
            raw = hcl2.loads(f.read_text())
            self.files[f.name] = raw
            self.text += f.read_text()
            for kind, table in (("resource", self.resources), ("data", self.data)):
                for blk in blocks(raw.get(kind)):
                    for rtype, named in blk.items():
                        for name, body in named.items():
                            table[(unquote(rtype), unquote(name))] = body
            for blk in blocks(raw.get("variable")):
                for name, body in blk.items():
                    self.variables[unquote(name)] = body
                    self.variable_order.setdefault(f.name, []).append(unquote(name))
            for blk in blocks(raw.get("output")):
                for name, body in blk.items():
                    self.outputs[unquote(name)] = body
                    self.output_order.setdefault(f.name, []).append(unquote(name))
            for blk in blocks(raw.get("locals")):
                self.locals.update({k: v for k, v in blk.items() if not k.startswith("__")})
            for blk in blocks(raw.get("module")):
                for name, body in blk.items():
                    self.modules[unquote(name)] = body
            self.terraform += blocks(raw.get("terraform"))
            self.providers += blocks(raw.get("provider"))

    def of_type(self, rtype: str) -> dict[str, dict]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


@cache
def load(path: Path) -> Config:
    return Config(path)


def all_configs() -> list[Config]:
    return [load(p) for p in MODULES + ENVS]


def resources_of(rtype: str):
    for cfg in all_configs():
        for name, body in cfg.of_type(rtype).items():
            yield cfg.path.name, name, body


def lifecycle(body: dict) -> dict:
    return clean(blocks(body.get("lifecycle"))[0]) if body.get("lifecycle") else {}


def ignored(body: dict) -> set[str]:
    return set(lifecycle(body).get("ignore_changes", []))


def env_config(name: str):
    from deployctl.config import load_env

    return load_env(name, ROOT)


# ---- layout and conventions -----------------------------------------------------------


def test_the_expected_modules_exist():
    assert EXPECTED_MODULES <= set(MODULE_IDS)
    assert {"dev", "staging", "prod"} <= set(ENV_IDS)


@pytest.mark.parametrize("module", MODULES, ids=MODULE_IDS)
def test_module_is_flat_with_standard_files(module):
    names = {p.name for p in module.iterdir()}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} <= names
    assert not [p for p in module.iterdir() if p.is_dir()], "modules are flat"
    cfg = load(module)
    assert set(cfg.variable_order) == {"variables.tf"}, "every variable lives in variables.tf"
    assert set(cfg.output_order) == {"outputs.tf"}, "every output lives in outputs.tf"


@pytest.mark.parametrize("path", MODULES + ENVS, ids=MODULE_IDS + ENV_IDS)
def test_variables_and_outputs_are_alphabetical_typed_and_described(path):
    cfg = load(path)
    for order in list(cfg.variable_order.values()) + list(cfg.output_order.values()):
        assert order == sorted(order)
    for name, body in cfg.variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
        assert "any" not in re.findall(r"\w+", body["type"]), f"variable {name} uses type any"
    for name, body in cfg.outputs.items():
        assert body.get("description"), f"output {name} has no description"


@pytest.mark.parametrize("path", MODULES + ENVS, ids=MODULE_IDS + ENV_IDS)
def test_versions_are_pinned(path):
    cfg = load(path)
    (tf,) = cfg.terraform
    assert clean(tf["required_version"]) == ">= 1.10"
    aws = clean(blocks(tf["required_providers"])[0])["aws"]
    assert aws == {"source": "hashicorp/aws", "version": ">= 5.100, < 7.0"}


def test_no_external_programs_local_exec_or_local_zips():
    for cfg in all_configs():
        assert "external" not in {t for t, _ in cfg.data}
        assert "archive_file" not in {t for t, _ in cfg.data}
        assert "local-exec" not in cfg.text and "provisioner" not in cfg.text
        for body in cfg.of_type("aws_lambda_function").values():
            assert "filename" not in body and "source_code_hash" not in body


def test_count_is_only_a_zero_one_switch():
    for cfg in all_configs():
        for (rtype, name), body in cfg.resources.items():
            if "count" in body:
                assert re.fullmatch(r"\$\{.+\? [01] : [01]\}", body["count"]), (
                    f"{rtype}.{name} count is not a 0/1 switch"
                )


# ---- READMEs ----------------------------------------------------------------------


def md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def readme_table(readme: str, heading: str) -> list[list[str]]:
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


@pytest.mark.parametrize("module", MODULES, ids=MODULE_IDS)
def test_readme_lists_exactly_the_inputs_and_outputs(module):
    cfg = load(module)
    readme = (module / "README.md").read_text()
    inputs = readme_table(readme, "Inputs")
    outputs = readme_table(readme, "Outputs")
    assert [row[0].strip("`") for row in inputs] == list(cfg.variables), (
        "README inputs differ from variables.tf"
    )
    assert [row[0].strip("`") for row in outputs] == list(cfg.outputs), (
        "README outputs differ from outputs.tf"
    )
    for name, description, _type, _default, required in inputs:
        body = cfg.variables[name.strip("`")]
        assert description == md(unquote(body["description"])), f"{name}: README description is stale"
        assert required == ("no" if "default" in body else "yes"), f"{name}: README Required column is stale"
    for name, description in outputs:
        assert description == md(unquote(cfg.outputs[name.strip("`")]["description"])), (
            f"{name}: README description is stale"
        )


# ---- encryption everywhere ---------------------------------------------------------------


def test_every_log_group_is_kms_encrypted_and_expires():
    found = list(resources_of("aws_cloudwatch_log_group"))
    assert len(found) >= 3
    for module, name, body in found:
        assert clean(body.get("kms_key_id", "")).startswith("${var.kms_key_arn"), (
            f"{module}: log group {name} without CMK"
        )
        assert "retention_in_days" in body, f"{module}: log group {name} never expires"


def test_queues_topics_functions_and_tables_use_the_cmk_and_terraform_never_holds_a_secret():
    for _, _, body in resources_of("aws_sqs_queue"):
        assert clean(body["kms_master_key_id"]) == "${var.kms_key_arn}"
    for _, _, body in resources_of("aws_sns_topic"):
        assert clean(body["kms_master_key_id"]) == "${var.kms_key_arn}"
    for _, _, body in resources_of("aws_lambda_function"):
        assert clean(body["kms_key_arn"]) == "${var.kms_key_arn}"
    tables = list(resources_of("aws_dynamodb_table"))
    assert len(tables) == 2
    for _, _, body in tables:
        sse = clean(blocks(body["server_side_encryption"])[0])
        assert sse == {"enabled": True, "kms_key_arn": "${var.kms_key_arn}"}
        assert clean(blocks(body["point_in_time_recovery"])[0]) == {
            "enabled": "${var.point_in_time_recovery}"
        }
    assert load(TF / "modules" / "dynamodb_table").variables["point_in_time_recovery"]["default"] is True
    # SecureStrings are created by deployctl (deployctl.infra.secrets) under the CMK: a managed
    # parameter (even with ignore_changes) or a data source reads the decrypted value into state/plans.
    params = dict((name, body) for _, name, body in resources_of("aws_ssm_parameter"))
    assert set(params) == {"this"} and clean(params["this"]["type"]) == "String"
    assert all(t != "aws_ssm_parameter" for cfg in all_configs() for t, _ in cfg.data)
    app_config = load(TF / "modules" / "app_config")
    (removed,) = [clean(b) for b in blocks(app_config.files["main.tf"].get("removed"))]
    assert removed["from"] == "${aws_ssm_parameter.secure}" or removed["from"] == "aws_ssm_parameter.secure"
    assert clean(blocks(removed["lifecycle"])[0]) == {"destroy": False}, "forget the old SecureStrings, never delete"
    assert "secure_names" in app_config.outputs and "kms_key_arn" not in app_config.variables


def test_kms_key_rotates_and_its_policy_has_no_anonymous_principal():
    cfg = load(TF / "modules" / "kms")
    key = cfg.resources[("aws_kms_key", "this")]
    assert key["enable_key_rotation"] is True
    assert clean(key["deletion_window_in_days"]) == "${var.deletion_window_in_days}"
    policy = clean(cfg.locals["key_policy"])
    principals = [s["Principal"] for s in policy["Statement"]]
    assert "*" not in json.dumps(principals)
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    logs = by_sid["CloudWatchLogsInThisAccountAndRegion"]
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    assert "${var.account_id}" in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    services = by_sid["AwsServicesOfThisAccount"]
    assert services["Condition"] == {"StringEquals": {"aws:SourceAccount": "${var.account_id}"}}
    assert "*" not in "".join(services["Action"])
    defaults = clean(cfg.variables["service_principals"]["default"])
    assert {"sns.amazonaws.com", "sqs.amazonaws.com", "dynamodb.amazonaws.com"} <= set(defaults)


def bucket_resources(cfg: Config, rtype: str) -> dict[str, dict]:
    return {clean(body["bucket"]): body for body in cfg.of_type(rtype).values()}


def test_artifact_bucket_is_versioned_kms_encrypted_private_and_logged():
    cfg = load(TF / "modules" / "artifact_bucket")
    buckets = {f"${{aws_s3_bucket.{name}.id}}" for name in cfg.of_type("aws_s3_bucket")}
    assert buckets == {"${aws_s3_bucket.this.id}", "${aws_s3_bucket.logs.id}"}
    for rtype in (
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy",
        "aws_s3_bucket_lifecycle_configuration",
    ):
        assert set(bucket_resources(cfg, rtype)) == buckets, f"{rtype} missing for a bucket"
    for body in cfg.of_type("aws_s3_bucket_versioning").values():
        assert clean(body["versioning_configuration"])[0]["status"] == "Enabled"
    for body in cfg.of_type("aws_s3_bucket_public_access_block").values():
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ):
            assert body[flag] is True
    for body in cfg.of_type("aws_s3_bucket_ownership_controls").values():
        assert clean(body["rule"])[0]["object_ownership"] == "BucketOwnerEnforced"
    sse = bucket_resources(cfg, "aws_s3_bucket_server_side_encryption_configuration")
    rule = clean(sse["${aws_s3_bucket.this.id}"]["rule"])[0]
    assert rule["bucket_key_enabled"] is True
    assert rule["apply_server_side_encryption_by_default"][0] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": "${var.kms_key_arn}",
    }
    # server access logs can only land in an SSE-S3 bucket
    log_rule = clean(sse["${aws_s3_bucket.logs.id}"]["rule"])[0]
    assert log_rule["apply_server_side_encryption_by_default"][0] == {"sse_algorithm": "AES256"}
    logging = clean(cfg.resources[("aws_s3_bucket_logging", "this")])
    assert (
        logging["bucket"] == "${aws_s3_bucket.this.id}"
        and logging["target_bucket"] == "${aws_s3_bucket.logs.id}"
    )
    lifecycle_rule = clean(cfg.resources[("aws_s3_bucket_lifecycle_configuration", "this")]["rule"])[0]
    assert lifecycle_rule["noncurrent_version_expiration"][0] == {
        "noncurrent_days": "${var.noncurrent_version_days}"
    }
    assert lifecycle_rule["abort_incomplete_multipart_upload"][0] == {"days_after_initiation": 7}
    assert cfg.variables["force_destroy"]["default"] is False


def test_both_bucket_policies_are_tls_only():
    cfg = load(TF / "modules" / "artifact_bucket")
    policies = {name: clean(body["policy"]) for name, body in cfg.of_type("aws_s3_bucket_policy").items()}
    assert policies == {
        "this": "${jsonencode(local.artifact_bucket_policy)}",
        "logs": "${jsonencode(local.log_bucket_policy)}",
    }
    for local_name, bucket in (("artifact_bucket_policy", "this"), ("log_bucket_policy", "logs")):
        statements = clean(cfg.locals[local_name])["Statement"]
        deny = [s for s in statements if s["Effect"] == "Deny"]
        assert deny == [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"${{aws_s3_bucket.{bucket}.arn}}", f"${{aws_s3_bucket.{bucket}.arn}}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
        for s in statements:
            if s["Effect"] == "Allow":
                assert s["Principal"] != "*" and "Condition" in s


# ---- least privilege ---------------------------------------------------------------------------

# (module, policy document, statement sid): the only statements allowed a "*" resource.
STAR_RESOURCE_ALLOWED = {
    ("lambda_function", "this", "XRayWriteOnlyNoResourceLevelPermissions"),
    ("iam_boundary", "this", "XRayWriteOnlyNoResourceLevelPermissions"),
    # a Deny: it only narrows (the boundary forbids iam:*, sts:AssumeRole*, organizations:* everywhere)
    ("iam_boundary", "this", "NoIdentityRoleOrOrganizationActions"),
}


def policy_documents():
    for cfg in all_configs():
        for (dtype, name), body in cfg.data.items():
            if dtype == "aws_iam_policy_document":
                yield cfg, name, body


def test_no_wildcard_action_and_no_star_resource_except_justified():
    seen = set()
    for cfg, doc, body in policy_documents():
        for statement in blocks(body.get("statement")):
            s = clean(statement)
            for action in s.get("actions", []):
                if s.get("effect") == "Deny":
                    continue  # a wildcard in a Deny only narrows
                assert "*" not in action, f"{cfg.path.name}/{doc}: wildcard action {action}"
            if "*" in s.get("resources", []):
                key = (cfg.path.name, doc, s.get("sid"))
                assert key in STAR_RESOURCE_ALLOWED, f"unjustified Resource '*' in {key}"
                seen.add(key)
    assert seen == STAR_RESOURCE_ALLOWED


def test_xray_star_resource_is_write_only_and_justified():
    cfg = load(TF / "modules" / "lambda_function")
    body = cfg.data[("aws_iam_policy_document", "this")]
    (xray,) = [
        clean(s)
        for s in blocks(body["statement"])
        if clean(s).get("sid") == "XRayWriteOnlyNoResourceLevelPermissions"
    ]
    assert sorted(xray["actions"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    comment = " ".join(c["value"] for c in body.get("__comments__", []))
    assert "AWS requires Resource" in comment


def test_lambda_role_gets_only_listed_statements_plus_its_own_resources():
    cfg = load(TF / "modules" / "lambda_function")
    body = cfg.data[("aws_iam_policy_document", "this")]
    (dynamic,) = blocks(body["dynamic"])
    assert clean(dynamic)["statement"]["for_each"] == "${merge(var.policy_statements, local.own_statements)}"
    own = clean(cfg.locals["own_statements"])
    assert own == {
        "WriteOwnLogGroup": {
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": ["${aws_cloudwatch_log_group.this.arn}", "${aws_cloudwatch_log_group.this.arn}:*"],
        },
        "SendToOwnDeadLetterQueue": {
            "actions": ["sqs:SendMessage"],
            "resources": ["${aws_sqs_queue.dlq.arn}"],
        },
        "UseTheKey": {"actions": ["kms:Decrypt", "kms:GenerateDataKey"], "resources": ["${var.kms_key_arn}"]},
    }
    # the input itself refuses wildcards
    condition = cfg.variables["policy_statements"]["validation"][0]["condition"]
    assert 'r != \\"*\\"' in condition or 'r != "*"' in condition
    assert "[A-Za-z0-9]+$" in condition
    # one inline policy, no managed policies anywhere
    assert set(cfg.of_type("aws_iam_role_policy")) == {"this"}
    for c in all_configs():
        assert not c.of_type("aws_iam_role_policy_attachment")
        assert "arn:aws:iam::aws:policy" not in c.text
        assert "managed_policy_arns" not in c.text


def test_root_grants_exactly_what_each_function_lists():
    cfg = load(ENVS[0])
    assert clean(cfg.locals["table_read_actions"]) == [
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
    ]
    assert clean(cfg.locals["table_write_actions"]) == [
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert clean(cfg.locals["parameter_read_actions"]) == [
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
    ]
    statements = cfg.locals["function_statements"]
    assert (
        "fn.tables_read" in statements
        and "fn.tables_write" in statements
        and "fn.reads_parameters" in statements
    )
    assert statements.count("module.tables[table].iam_resources") == 2
    assert "module.app_config.iam_resources" in statements
    assert '"*"' not in statements
    outputs = load(TF / "modules" / "dynamodb_table").outputs["iam_resources"]
    assert clean(outputs["value"]) == ["${local.table.arn}", "${local.table.arn}/index/*"]
    config = load(TF / "modules" / "app_config")
    assert clean(config.outputs["iam_resources"]["value"]) == ["${local.arn_prefix}", "${local.arn_prefix}/*"]


def test_api_gateway_invokes_only_live_aliases_from_its_own_stage():
    cfg = load(TF / "modules" / "rest_api")
    perm = clean(cfg.resources[("aws_lambda_permission", "this")])
    assert perm["qualifier"] == "live"
    assert perm["principal"] == "apigateway.amazonaws.com"
    assert perm["source_arn"] == "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/*/*"
    logs = clean(blocks(cfg.data[("aws_iam_policy_document", "apigateway_logs")]["statement"])[0])
    assert all(r.startswith("${local.log_group_arn_prefix}:") for r in logs["resources"])


def test_api_gateway_cloudwatch_role_is_assumable_and_may_list_log_groups():
    """API Gateway puts no aws:SourceAccount in the context when it assumes the account's
    CloudWatch role, so a trust condition on it fails UpdateAccount ("The role ARN does not
    have required permissions"). DescribeLogGroups is a list call IAM checks against
    log-group:*, so the log-group name prefixes of the other statement would deny it."""
    cfg = load(TF / "modules" / "rest_api")
    (trust,) = [clean(s) for s in blocks(cfg.data[("aws_iam_policy_document", "apigateway_assume")]["statement"])]
    assert trust["actions"] == ["sts:AssumeRole"]
    assert clean(trust["principals"])[0]["identifiers"] == ["apigateway.amazonaws.com"]
    assert "condition" not in trust
    statements = [clean(s) for s in blocks(cfg.data[("aws_iam_policy_document", "apigateway_logs")]["statement"])]
    (describe,) = [s for s in statements if "logs:DescribeLogGroups" in s["actions"]]
    assert describe["actions"] == ["logs:DescribeLogGroups"]
    assert describe["resources"] == ["${local.log_group_arn_prefix}:*"]
    writes = [s for s in statements if s is not describe]
    assert writes and all(not r.endswith("log-group:*") for s in writes for r in s["resources"])


def test_table_key_attributes_tolerate_shared_keys_and_refuse_conflicting_types():
    """Two GSIs sharing an attribute (or a GSI on the table's sort key) must not make the
    attribute map a duplicate-key error; conflicting types fail the plan with a message."""
    cfg = load(TF / "modules" / "dynamodb_table")
    assert {k for k in cfg.files["keys.tf"] if not k.startswith("__")} == {"locals"}, "keys.tf: pure locals"
    assert "a.name => a.type..." in cfg.locals["key_attribute_types"]
    for name in ("this", "autoscaled"):
        body = cfg.resources[("aws_dynamodb_table", name)]
        assert clean(blocks(body["dynamic"])[0])["attribute"]["for_each"] == "${local.key_attributes}"
        (pre,) = lifecycle(body)["precondition"]
        assert pre["condition"] == "${length(local.conflicting_key_attributes) == 0}"


# ---- lambda aliases, tables, API -------------------------------------------------------------------


def test_aliases_live_and_staging_ignore_version_drift():
    cfg = load(TF / "modules" / "lambda_function")
    alias = cfg.resources[("aws_lambda_alias", "this")]
    assert clean(cfg.locals["aliases"]) == '${toset(["live", "staging"])}'
    # description holds deployctl's rollback history (deployctl.artifacts.aliases)
    assert {"description", "function_version", "routing_config"} <= ignored(alias)
    fn = cfg.resources[("aws_lambda_function", "this")]
    assert fn["publish"] is True
    assert clean(fn["tracing_config"])[0] == {"mode": "Active"}
    assert clean(fn["dead_letter_config"])[0] == {"target_arn": "${aws_sqs_queue.dlq.arn}"}
    assert set(clean(fn["depends_on"])) >= {"${aws_cloudwatch_log_group.this}"}
    assert (
        clean(cfg.resources[("aws_cloudwatch_log_group", "this")]["name"])
        == "/aws/lambda/${var.function_name}"
    )


def test_autoscaled_tables_ignore_the_capacities_autoscaling_owns():
    cfg = load(TF / "modules" / "dynamodb_table")
    on_demand = cfg.resources[("aws_dynamodb_table", "this")]
    autoscaled = cfg.resources[("aws_dynamodb_table", "autoscaled")]
    assert clean(on_demand["billing_mode"]) == "PAY_PER_REQUEST"
    assert clean(autoscaled["billing_mode"]) == "PROVISIONED"
    assert {"read_capacity", "write_capacity", "global_secondary_index"} <= ignored(autoscaled)
    assert not ignored(on_demand), "on-demand tables must not hide any drift"
    for body in (on_demand, autoscaled):
        assert clean(body["deletion_protection_enabled"]) == "${var.deletion_protection}"
        assert "NEW_AND_OLD_IMAGES" in clean(body["stream_view_type"])
    policy = clean(cfg.resources[("aws_appautoscaling_policy", "this")])
    tracking = policy["target_tracking_scaling_policy_configuration"][0]
    assert tracking["target_value"] == "${var.capacity.target_utilization}"
    assert "70" in clean(cfg.variables["capacity"]["type"]).split("target_utilization")[1][:30]
    # the table and every GSI, read and write
    targets = cfg.locals["scaling_targets"]
    assert (
        "table-${kind}" in targets and "index-${index}-${kind}" in targets and '["read", "write"]' in targets
    )


def test_stage_logs_traces_and_throttles():
    cfg = load(TF / "modules" / "rest_api")
    stage = clean(cfg.resources[("aws_api_gateway_stage", "this")])
    assert stage["access_log_settings"][0]["destination_arn"] == "${aws_cloudwatch_log_group.access.arn}"
    assert stage["xray_tracing_enabled"] == "${var.xray_tracing_enabled}"
    settings = clean(cfg.resources[("aws_api_gateway_method_settings", "this")]["settings"])[0]
    assert settings["metrics_enabled"] is True
    assert settings["data_trace_enabled"] == "${var.data_trace_enabled}"
    assert settings["throttling_rate_limit"] == "${var.throttling_rate_limit}"
    assert settings["throttling_burst_limit"] == "${var.throttling_burst_limit}"
    assert cfg.variables["data_trace_enabled"]["default"] is False
    api = clean(cfg.resources[("aws_api_gateway_rest_api", "this")])
    assert api["endpoint_configuration"][0]["types"] == ["REGIONAL"]
    assert api["body"] == "${local.body}"
    deployment = clean(cfg.resources[("aws_api_gateway_deployment", "this")])
    assert deployment["triggers"] == {"redeployment": "${local.body_sha256}"}
    assert clean(cfg.locals["body_sha256"]) == "${sha256(local.body)}"
    assert ("aws_api_gateway_account", "this") in cfg.resources


# ---- env roots ---------------------------------------------------------------------------------------


def test_env_roots_share_one_set_of_root_files():
    """Differences between environments come from env config only: staging and prod
    link to dev's root files, so there is one copy to edit."""
    source = TF / "envs" / "dev"
    reference = sorted(p.name for p in source.glob("*.tf"))
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "providers.tf"} <= set(reference)
    assert not any((source / name).is_symlink() for name in reference)
    for env in ENVS:
        if env == source:
            continue
        assert sorted(p.name for p in env.glob("*.tf")) == reference, f"{env.name}: link every root file to dev"
        for name in reference:
            link = env / name
            assert link.is_symlink() and link.resolve() == (source / name).resolve(), (
                f"terraform/envs/{env.name}/{name} must be a symlink to ../dev/{name}"
            )


@pytest.mark.parametrize("env", ENVS, ids=ENV_IDS)
def test_root_backend_provider_and_foundation_modules(env):
    cfg = load(env)
    (tf,) = cfg.terraform
    assert clean(tf["backend"]) == [{"s3": {}}], "backend settings are rendered by the CLI, never hard-coded"
    (provider,) = cfg.providers
    aws = clean(provider)["aws"]
    assert aws["region"] == "${var.aws.region}"
    assert aws["allowed_account_ids"] == ["${var.aws.account_id}"]
    tags = aws["default_tags"][0]["tags"]
    assert set(tags) == {"Environment", "Application", "ManagedBy", "Owner", "CostCenter"}
    assert tags["Environment"] == "${var.environment}"
    assert not re.search(r"\b\d{12}\b", cfg.text), "no hard-coded account ids"
    assert {"kms", "artifact_bucket", "tables", "functions", "api", "app_config", "monitoring"} <= set(
        cfg.modules
    )
    for body in cfg.modules.values():
        assert clean(body["source"]).startswith("../../modules/")
    assert clean(cfg.modules["tables"]["for_each"]) == "${var.tables}"
    assert clean(cfg.modules["functions"]["for_each"]) == "${var.functions}"


@pytest.mark.parametrize("env", ENVS, ids=ENV_IDS)
def test_prod_protections_are_wired_from_config(env):
    cfg = load(env)
    assert clean(cfg.modules["tables"]["deletion_protection"]) == "${var.protection.deletion_protection}"
    assert clean(cfg.modules["artifact_bucket"]["force_destroy"]) == "${!var.protection.deletion_protection}"
    assert (
        clean(cfg.modules["kms"]["deletion_window_in_days"]) == "${var.protection.kms_deletion_window_days}"
    )
    assert clean(cfg.modules["functions"]["log_retention_days"]) == "${var.logs.retention_days}"
    conditions = " ".join(v["condition"] for v in cfg.variables["protection"]["validation"])
    assert (
        'var.environment != \\"prod\\" || (var.protection.deletion_protection' in conditions
        or 'var.environment != "prod" || (var.protection.deletion_protection' in conditions
    )


def test_env_configs_carry_the_protections():
    prod, dev = env_config("prod"), env_config("dev")
    assert prod.get("protection.deletion_protection") is True
    assert prod.get("protection.kms_deletion_window_days") == 30
    assert prod.get("logs.retention_days") >= 30
    assert prod.tables["items"]["billing_mode"] == "PROVISIONED"
    assert prod.tables["items"]["capacity"] == {
        "read_min": 5,
        "read_max": 1000,
        "write_min": 5,
        "write_max": 1000,
        "target_utilization": 70,
    }
    assert prod.get("api.data_trace") is False and "*" not in prod.get("api.cors_allowed_origins")
    assert dev.get("protection.deletion_protection") is False
    assert dev.tables["items"]["billing_mode"] == "PAY_PER_REQUEST"


def object_attributes(type_expr: str) -> dict[str, str]:
    """Top-level attribute => type text of an object(...) / map(object(...)) type expression."""
    text = type_expr.strip()
    if text.startswith("${"):
        text = text[2:-1]
    text = re.sub(r"^map\((.*)\)$", r"\1", text)
    body = re.fullmatch(r"object\(\{(.*)\}\)", text).group(1)
    attrs, depth, start = {}, 0, 0
    parts = []
    for i, ch in enumerate(body):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    for part in parts:
        if part.strip():
            key, value = part.split("=", 1)
            attrs[key.strip()] = value.strip()
    return attrs


def optional_default(type_text: str):
    m = re.fullmatch(r"optional\((string|number|bool|list\(string\)|map\(string\)), (.*)\)", type_text)
    return json.loads(m.group(2)) if m else None


def test_root_declares_one_variable_per_rendered_section():
    from deployctl.infra import render

    cfg = load(ENVS[0])
    assert set(cfg.variables) == ROOT_VARIABLES == set(render.SECTIONS) | {"environment"}


@pytest.mark.parametrize("env", ENV_IDS)
def test_root_variable_types_accept_every_rendered_key(env):
    """Every key `deployctl render` writes has an attribute in the root variable's type
    (Terraform would silently drop an unknown one)."""
    from deployctl.infra import render

    cfg = load(ENVS[0])
    text, tfvars, _missing, _omitted = render.render_tfvars_text(
        env_config(env), {"functions": {}}, allow_missing_artifacts=True
    )
    assert json.loads(text) == tfvars
    for section, value in tfvars.items():
        if section == "environment":
            assert value == env
            continue
        attrs = object_attributes(cfg.variables[section]["type"])
        items = value.values() if section in ("functions", "layers", "tables", "parameters") else [value]
        for item in items:
            assert set(item) <= set(attrs), (
                f"{section}: rendered keys {set(item) - set(attrs)} have no attribute"
            )
            if section == "tables":
                gsi_attrs = object_attributes(re.sub(r"^optional\((.*), \{\}\)$", r"\1", attrs["gsis"]))
                for gsi in item.get("gsis", {}).values():
                    assert set(gsi) <= set(gsi_attrs)
                cap_attrs = object_attributes(re.sub(r"^optional\((.*), \{\}\)$", r"\1", attrs["capacity"]))
                assert set(item.get("capacity", {})) <= set(cap_attrs)


def test_root_optional_defaults_mirror_defaults_toml():
    defaults = tomllib.loads((TF / "envs" / "defaults.toml").read_text())
    cfg = load(ENVS[0])
    for section in ("app", "aws", "artifacts", "protection", "logs", "lambda", "api", "alarms", "ci"):
        attrs = object_attributes(cfg.variables[section]["type"])
        assert set(attrs) == set(defaults[section]), f"{section}: attributes differ from defaults.toml"
        for key, value in defaults[section].items():
            assert optional_default(attrs[key]) == value, (
                f"{section}.{key}: optional default differs from defaults.toml"
            )
        explicit = clean(cfg.variables[section]["default"])
        assert explicit in ({}, defaults[section]), f"{section}: variable default differs from defaults.toml"
    fn_attrs = object_attributes(cfg.variables["functions"]["type"])
    assert optional_default(fn_attrs["reserved_concurrency"]) == 0
    for key in ("s3_bucket", "s3_key", "s3_object_version"):
        assert optional_default(fn_attrs[key]) == "", 'functions without an artifact yet render as ""'


def test_root_creates_a_layer_per_published_layer_and_attaches_it():
    """One lambda_layer module per [layers.NAME] that has an artifact; each function gets the
    versioned ARNs of exactly the layers it lists."""
    cfg = load(ENVS[0])
    layers = cfg.modules["layers"]
    assert clean(layers["source"]) == "../../modules/lambda_layer"
    for_each = re.sub(r"\s+", " ", layers["for_each"])
    assert "var.layers" in for_each and 'layer.s3_key != ""' in for_each
    assert layers["source_code_hash"] == "${each.value.source_code_hash}"
    assert layers["compatible_runtimes"] == ["${var.lambda.runtime}"]
    assert layers["compatible_architectures"] == ["${var.lambda.architecture}"]
    fn_layers = re.sub(r"\s+", " ", cfg.modules["functions"]["layers"])
    assert "each.value.layers" in fn_layers and "module.layers[layer].arn" in fn_layers
    layer_module = load(TF / "modules" / "lambda_layer")
    body = layer_module.resources[("aws_lambda_layer_version", "this")]
    for attr in ("s3_bucket", "s3_key", "s3_object_version", "source_code_hash", "compatible_runtimes",
                 "compatible_architectures"):
        assert body[attr] == f"${{var.{attr}}}"
