locals {
  aliases = toset(["live", "staging"])

  # Statements every function needs for itself, each on its own resources.
  own_statements = {
    WriteOwnLogGroup = {
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = [aws_cloudwatch_log_group.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"]
    }
    SendToOwnDeadLetterQueue = {
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.dlq.arn]
    }
    # Decrypt its environment variables; encrypt dead letters into the
    # KMS-encrypted queue.
    UseTheKey = {
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

# ---- logs, dead letters -------------------------------------------------------

# Created before the function so Lambda never creates an unencrypted,
# never-expiring group of the same name.
resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is per environment from env config (logs.retention_days: 7 in dev, 90 in prod); a 1-year minimum for debug logs of every env is cost without a use.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.function_name}-dlq"
  message_retention_seconds         = var.dead_letter_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

# ---- the role: exactly what the caller lists, plus its own logs/DLQ/key ----------

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumesTheRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  dynamic "statement" {
    for_each = merge(var.policy_statements, local.own_statements)

    content {
      sid       = statement.key
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  # X-Ray: PutTraceSegments and PutTelemetryRecords support no resource-level
  # permissions, AWS requires Resource "*" for them (they can only write trace
  # data of the caller's own account).
  statement {
    sid       = "XRayWriteOnlyNoResourceLevelPermissions"
    effect    = "Allow"
    actions   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    resources = ["*"]
  }
}

# Under the env's IAM path, capped by the env's permissions boundary: the CI
# apply role may only create or change roles that carry it.
resource "aws_iam_role" "this" {
  name                 = var.function_name
  path                 = var.role_path
  description          = "Execution role of ${var.function_name}"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# ---- the function and its aliases -----------------------------------------------

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function only calls regional AWS APIs (DynamoDB, SSM, X-Ray) over TLS with IAM auth; a VPC would add NAT/endpoints and cold-start cost and protect nothing here.
  #checkov:skip=CKV_AWS_272:Code integrity comes from content-addressed keys (lambda/<fn>/<sha256>.zip) pinned by S3 version in the committed manifest, in a KMS-encrypted TLS-only bucket; AWS Signer profiles are out of this stack's scope.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is set per function from env config (users = 5); the others deliberately share the unreserved pool.
  function_name                  = var.function_name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  handler                        = var.handler
  runtime                        = var.runtime
  architectures                  = [var.architecture]
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  layers                         = var.layers
  s3_bucket                      = var.s3_bucket
  s3_key                         = var.s3_key
  s3_object_version              = var.s3_object_version
  publish                        = true
  kms_key_arn                    = var.kms_key_arn
  tags                           = var.tags

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [var.environment_variables] : []

    content {
      variables = environment.value
    }
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]

  lifecycle {
    precondition {
      condition     = var.s3_bucket != "" && var.s3_key != "" && var.s3_object_version != ""
      error_message = "No published artifact for ${var.function_name}: run `deployctl publish-lambda` then `deployctl render` (only the foundation plan may run without artifacts)."
    }
  }
}

# Terraform creates the aliases; which version they point to afterwards belongs
# to `deployctl promote` / `deployctl rollback`, so version drift is ignored.
resource "aws_lambda_alias" "this" {
  for_each = local.aliases

  name             = each.key
  description      = "${each.key} alias of ${var.function_name} (moved by deployctl promote/rollback)"
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version

  lifecycle {
    # After creation the aliases belong to deployctl promote/rollback: the version,
    # the canary weights, and the description (which holds the rollback history).
    ignore_changes = [description, function_version, routing_config]
  }
}
