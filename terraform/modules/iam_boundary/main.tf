data "aws_partition" "current" {}

# The permissions boundary of every role the stack creates (function roles, the
# API Gateway CloudWatch role). A role's effective permissions are the
# intersection of its own policies and this one, so whoever may create or
# change a role under the env's path (the CI apply role, only with this
# boundary set) can never give it more than what is listed here: the env's
# tables, parameters, log groups, queues and key, and X-Ray writes. Nothing in
# iam:*, sts:AssumeRole* or organizations:* is allowed, and those are denied
# outright as well. Changing this policy is a foundation step (a person): the
# apply role is denied every write on it.

locals {
  arn    = "arn:${data.aws_partition.current.partition}"
  logs   = "${local.arn}:logs:${var.region}:${var.account_id}:log-group"
  tables = "${local.arn}:dynamodb:${var.region}:${var.account_id}:table/${var.name}-*"
  params = "${local.arn}:ssm:${var.region}:${var.account_id}:parameter${trimsuffix(var.parameter_prefix, "/")}"
}

data "aws_iam_policy_document" "this" {
  # Function roles: items and users tables (and their indexes) of this env only.
  statement {
    sid = "EnvTables"
    actions = [
      "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
      "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [local.tables]
  }

  statement {
    sid       = "EnvParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
    resources = [local.params, "${local.params}/*"]
  }

  # The env's key only: Lambda environments, SecureStrings, encrypted queues.
  statement {
    sid       = "EnvKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "EnvDeadLetterQueues"
    actions   = ["sqs:SendMessage"]
    resources = ["${local.arn}:sqs:${var.region}:${var.account_id}:${var.name}-*"]
  }

  # Function log groups of this env; API Gateway's execution and access log
  # groups (the account-level CloudWatch role writes them for every API).
  statement {
    sid = "EnvLogGroups"
    actions = [
      "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:FilterLogEvents",
      "logs:GetLogEvents", "logs:PutLogEvents",
    ]
    resources = [
      "${local.logs}:/aws/lambda/${var.name}-*",
      "${local.logs}:API-Gateway-Execution-Logs_*",
      "${local.logs}:/aws/apigateway/*",
    ]
  }

  statement {
    sid       = "ListLogGroupsOfThisAccountAndRegion"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["${local.logs}:*"]
  }

  # X-Ray: PutTraceSegments and PutTelemetryRecords support no resource-level
  # permissions, AWS requires Resource "*" for them.
  statement {
    sid       = "XRayWriteOnlyNoResourceLevelPermissions"
    actions   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    resources = ["*"]
  }

  statement {
    sid       = "NoIdentityRoleOrOrganizationActions"
    effect    = "Deny"
    actions   = ["iam:*", "organizations:*", "sts:AssumeRole", "sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity"]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "this" {
  name        = "${var.name}-boundary"
  path        = var.path
  description = "Permissions boundary of every role of ${var.name} (function roles, API Gateway logs role)"
  policy      = data.aws_iam_policy_document.this.json
  tags        = var.tags
}
