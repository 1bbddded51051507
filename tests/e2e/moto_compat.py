"""A moto server with the fixes the deploy path needs, for the end-to-end suite only.

moto 5.2.6 (the release requirements/ pins; tests/test_lock.py keeps this line
in step with the lock) has gaps on the path the real Terraform AWS provider takes
through our roots. Each fix below is small, names the moto source it works
around, and should be deleted when moto fixes it (the suite then shows whether it
still passes without it). Nothing here changes the product: these are the
emulator's bugs, not ours.

Run: python tests/e2e/moto_compat.py PORT   (serves on 127.0.0.1:PORT)
"""

from __future__ import annotations

import fnmatch
import json
import sys
from typing import Any

APPLIED: list[str] = []


def _fix(name: str):
    def register(fn):
        fn()
        APPLIED.append(name)
        return fn

    return register


# -- (1) bucket-policy conditions ------------------------------------------------------------
# moto/iam/policy_conditions.py evaluates only StringEquals (any other operator
# "holds"), and moto/iam/access_control.py IAMPolicyStatement.is_action_permitted
# returns DENIED when a statement's condition does not hold, instead of leaving the
# statement out. So the state bucket's TLS-only Deny (Bool aws:SecureTransport =
# false) denies every object request, the state file included. Here a statement
# whose condition does not hold does not apply, the usual operators are evaluated,
# and requests count as made over TLS (the emulator stands in for AWS's endpoint).

_REQUEST_CONTEXT = {"aws:securetransport": ["true"]}


def _values(v: Any) -> list[str]:
    items = v if isinstance(v, list) else [v]
    return [str(x).lower() if isinstance(x, bool) else str(x) for x in items]


def _condition_holds(condition: dict, context: dict[str, list[str]]) -> bool:
    for operator, pairs in condition.items():
        op = operator
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        for key, expected in pairs.items():
            actual = context.get(key.lower())
            expected_values = _values(expected)
            if op == "Null":
                if (actual is None) != (expected_values[0].lower() == "true"):
                    return False
                continue
            if actual is None:
                if if_exists:
                    continue
                return False
            negate = "Not" in op
            base = op.replace("Not", "")
            if base in ("StringEquals", "ArnEquals"):
                match = any(a == e for a in actual for e in expected_values)
            elif base == "StringEqualsIgnoreCase":
                match = any(a.lower() == e.lower() for a in actual for e in expected_values)
            elif base in ("StringLike", "ArnLike"):
                match = any(fnmatch.fnmatchcase(a, e) for a in actual for e in expected_values)
            elif base == "Bool":
                match = any(a.lower() == e.lower() for a in actual for e in expected_values)
            else:  # an operator we do not model: the statement is assumed to apply
                match = True
                negate = False
            if match == negate:
                return False
    return True


@_fix("iam/s3 policy conditions")
def _policy_conditions() -> None:
    from moto.iam import access_control

    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        statement = self._statement
        condition = statement.get("Condition") if isinstance(statement, dict) else None
        if not condition:
            return original(self, action, resource, principal, incoming_condition_values)
        context = dict(_REQUEST_CONTEXT)
        for key, value in (incoming_condition_values or {}).items():
            context[key.lower()] = _values(value)
        if not _condition_holds(condition, context):
            return access_control.PermissionResult.NEUTRAL
        unconditioned = access_control.IAMPolicyStatement({k: v for k, v in statement.items() if k != "Condition"})
        return original(unconditioned, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


# -- (2) PutBucketLogging with a "Principal": "*" statement ------------------------------------
# moto/s3/models.py FakeBucket._log_permissions_enabled_policy calls
# stmt.get("Principal", {}).get("Service"), which raises (500) when a statement of
# the target bucket's policy has "Principal": "*" (our TLS-only Deny). Statements
# whose principal is not a map are skipped here, as they grant the log service nothing.

@_fix("s3 PutBucketLogging with Principal '*'")
def _bucket_logging() -> None:
    from moto.s3 import models

    original = models.FakeBucket._log_permissions_enabled_policy

    def log_permissions_enabled_policy(target_bucket, target_prefix):
        policy = target_bucket.policy
        if not policy:
            return original(target_bucket, target_prefix)
        doc = json.loads(policy.decode() if isinstance(policy, bytes) else policy)
        statements = doc.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in statements if isinstance(s.get("Principal"), dict)]
        saved = target_bucket.policy
        try:
            target_bucket.policy = json.dumps({**doc, "Statement": kept}).encode()
            return original(target_bucket, target_prefix)
        finally:
            target_bucket.policy = saved

    models.FakeBucket._log_permissions_enabled_policy = staticmethod(log_permissions_enabled_policy)


# -- (3) DynamoDB Contributor Insights ------------------------------------------------------------
# moto/dynamodb/responses.py DynamoHandler has no UpdateContributorInsights /
# DescribeContributorInsights (500 "not implemented"); the tables module enables
# them for the table and each GSI. Kept here as a status per table and index.

@_fix("dynamodb contributor insights")
def _contributor_insights() -> None:
    from moto.dynamodb.responses import DynamoHandler

    status: dict[tuple[str, str, str, str], str] = {}

    def _key(self) -> tuple[str, str, str, str]:
        return (self.current_account, self.region, self._get_param("TableName"), self._get_param("IndexName") or "")

    def _table_exists(self) -> None:
        self.dynamodb_backend.get_table(self._get_param("TableName"))  # raises ResourceNotFound like AWS

    def update_contributor_insights(self) -> str:
        _table_exists(self)
        action = self._get_param("ContributorInsightsAction")
        status[_key(self)] = "ENABLED" if action == "ENABLE" else "DISABLED"
        doc = {"TableName": self._get_param("TableName"), "ContributorInsightsStatus": status[_key(self)]}
        if self._get_param("IndexName"):
            doc["IndexName"] = self._get_param("IndexName")
        return json.dumps(doc)

    def describe_contributor_insights(self) -> str:
        _table_exists(self)
        doc = {"TableName": self._get_param("TableName"), "ContributorInsightsStatus": status.get(_key(self), "DISABLED"),
               "ContributorInsightsRuleList": []}
        if self._get_param("IndexName"):
            doc["IndexName"] = self._get_param("IndexName")
        return json.dumps(doc)

    DynamoHandler.update_contributor_insights = update_contributor_insights
    DynamoHandler.describe_contributor_insights = describe_contributor_insights


# -- (4) PutRestApi with mock integrations, and the root path ----------------------------------
# moto/apigateway/models.py APIGatewayBackend.put_rest_api drops None values before
# calling put_integration, whose uri and integration_method have no default: a
# `mock` integration (our CORS preflight) has neither and the call raises (500).
# In overwrite mode it also re-creates "/" with add_child("/"), and then makes an
# extra child with an empty path part for the document's "/" path.

@_fix("apigateway put_rest_api mock integrations and root")
def _put_rest_api() -> None:
    from moto.apigateway import models

    backend = models.APIGatewayBackend
    original_put_integration = backend.put_integration

    def put_integration(self, function_id, resource_id, method_type, integration_type, uri=None,
                        integration_method=None, **kwargs):
        return original_put_integration(self, function_id, resource_id, method_type, integration_type,
                                        uri, integration_method, **kwargs)

    backend.put_integration = put_integration

    original_put_rest_api = backend.put_rest_api

    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        api = self.get_rest_api(function_id)
        root = api.get_resource_for_path("/")
        result = original_put_rest_api(self, function_id, api_doc, fail_on_warnings, mode)
        # one root: keep the resource whose path is "/", fold children and methods of duplicates into it
        roots = [r for r in api.resources.values() if r.get_path() == "/"]
        keep = next((r for r in roots if root is not None and r.id == root.id), roots[0] if roots else None)
        for extra in roots:
            if extra is keep:
                continue
            keep.resource_methods.update(extra.resource_methods)
            for child in api.resources.values():
                if child.parent_id == extra.id:
                    child.parent_id = keep.id
            api.resources.pop(extra.id, None)
        if keep is not None:
            api.default = keep
        return result

    backend.put_rest_api = put_rest_api


# -- (5) Lambda DeadLetterConfig and LoggingConfig -----------------------------------------------
# moto/awslambda/models.py LambdaFunction neither stores nor returns DeadLetterConfig
# and LoggingConfig (CreateFunction, UpdateFunctionConfiguration, GetFunction), so
# the provider sees a diff on every function after each apply.

@_fix("lambda DeadLetterConfig and LoggingConfig")
def _lambda_config() -> None:
    from moto.awslambda.models import LambdaFunction

    original_init = LambdaFunction.__init__
    original_get = LambdaFunction.get_configuration
    original_update = LambdaFunction.update_configuration

    def __init__(self, account_id, spec, region, version="1"):
        original_init(self, account_id, spec, region, version)
        self.compat_dead_letter_config = spec.get("DeadLetterConfig")
        self.compat_logging_config = spec.get("LoggingConfig") or {
            "LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.get('FunctionName')}"}

    def get_configuration(self, on_create=False):
        config = original_get(self, on_create)
        if getattr(self, "compat_dead_letter_config", None):
            config["DeadLetterConfig"] = self.compat_dead_letter_config
        if getattr(self, "compat_logging_config", None):
            config["LoggingConfig"] = self.compat_logging_config
        return config

    def update_configuration(self, config_updates):
        if "DeadLetterConfig" in config_updates:
            self.compat_dead_letter_config = config_updates["DeadLetterConfig"]
        if "LoggingConfig" in config_updates:
            self.compat_logging_config = {**(getattr(self, "compat_logging_config", None) or {}),
                                          **config_updates["LoggingConfig"]}
        return original_update(self, config_updates)

    LambdaFunction.__init__ = __init__
    LambdaFunction.get_configuration = get_configuration
    LambdaFunction.update_configuration = update_configuration


# -- (6) KMS rotation period ----------------------------------------------------------------------
# moto/kms/models.py KmsBackend.enable_key_rotation ignores RotationPeriodInDays and
# moto/kms/responses.py get_key_rotation_status omits it, so the provider plans an
# update of every key with a rotation period after each apply.

@_fix("kms rotation period")
def _kms_rotation() -> None:
    from moto.kms.responses import KmsResponse

    original_enable = KmsResponse.enable_key_rotation
    original_status = KmsResponse.get_key_rotation_status

    def enable_key_rotation(self):
        result = original_enable(self)
        key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
        key.compat_rotation_period_in_days = self._get_param("RotationPeriodInDays") or 365
        return result

    def get_key_rotation_status(self):
        doc = json.loads(original_status(self))
        key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
        if doc.get("KeyRotationEnabled"):
            doc["RotationPeriodInDays"] = getattr(key, "compat_rotation_period_in_days", 365)
            doc["KeyId"] = key.id
        return json.dumps(doc)

    KmsResponse.enable_key_rotation = enable_key_rotation
    KmsResponse.get_key_rotation_status = get_key_rotation_status



# -- (7) managed policies in GetAccountAuthorizationDetails ---------------------------------------
# moto/iam/responses.py get_account_authorization_details serializes moto/iam/models.py Policy
# objects against botocore's ManagedPolicyDetail shape, which reads PolicyName and PolicyId from
# attributes policy_name / policy_id; Policy has only name / id, so both are missing (AWS always
# returns them, and cloudsplaining, which the suite runs on that document, requires them).

@_fix("managed policy names in authorization details")
def _authorization_details_policy_names() -> None:
    from moto.iam.models import Policy

    if not hasattr(Policy, "policy_name"):
        Policy.policy_name = property(lambda self: self.name)
    if not hasattr(Policy, "policy_id"):
        Policy.policy_id = property(lambda self: self.id)


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 5000
    from moto.server import main as moto_main

    print(f"moto_compat: fixes applied: {', '.join(APPLIED)}", file=sys.stderr, flush=True)
    moto_main(["-H", "127.0.0.1", "-p", str(port)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
