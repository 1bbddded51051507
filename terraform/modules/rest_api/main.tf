data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  access_log_format = {
    requestId          = "$context.requestId"
    extendedRequestId  = "$context.extendedRequestId"
    ip                 = "$context.identity.sourceIp"
    requestTime        = "$context.requestTime"
    httpMethod         = "$context.httpMethod"
    resourcePath       = "$context.resourcePath"
    path               = "$context.path"
    status             = "$context.status"
    protocol           = "$context.protocol"
    responseLength     = "$context.responseLength"
    responseLatency    = "$context.responseLatency"
    integrationLatency = "$context.integrationLatency"
    integrationStatus  = "$context.integrationStatus"
    errorMessage       = "$context.error.message"
    validationError    = "$context.error.validationErrorString"
    xrayTraceId        = "$context.xrayTraceId"
    userAgent          = "$context.identity.userAgent"
  }

  # Execution logs go to the group API Gateway names itself; creating it here
  # gives it retention and the CMK instead of an unencrypted, never-expiring one.
  execution_log_group_name = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.stage_name}"
}

resource "aws_api_gateway_rest_api" "this" {
  name        = var.name
  description = var.description
  body        = local.body

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = length(local.missing_functions) == 0
      error_message = "Operations in the OpenAPI document name functions this environment does not define: ${join(", ", local.missing_functions)}."
    }
  }
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "OpenAPI body sha256 ${local.body_sha256}"

  triggers = {
    redeployment = local.body_sha256
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is per environment from env config (logs.retention_days: 7 in dev, 90 in prod); a 1-year minimum for every env is cost without a use.
  name              = "/aws/apigateway/${var.name}/${var.stage_name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "execution" {
  #checkov:skip=CKV_AWS_338:Retention is per environment from env config (logs.retention_days: 7 in dev, 90 in prod); a 1-year minimum for every env is cost without a use.
  name              = local.execution_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:Responses are per-request reads of live data (items, users); a stage cache would serve stale or other callers' data.
  #checkov:skip=CKV2_AWS_29:No WAF in this stack's scope: the stage is throttled per env (rate/burst from env config) and every route validates its request; put a WAF web ACL in front when the API is public-facing.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; every integration here is a Lambda proxy authorised by IAM (aws_lambda_permission).
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  description          = "${var.name} ${var.stage_name}"
  xray_tracing_enabled = var.xray_tracing_enabled
  tags                 = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = jsonencode(local.access_log_format)
  }

  depends_on = [aws_api_gateway_account.this, aws_cloudwatch_log_group.execution]
}

resource "aws_api_gateway_method_settings" "this" {
  #checkov:skip=CKV_AWS_276:Data tracing is off by default and the env roots' validation rejects api.data_trace outside dev; dev enables it to debug request mapping.
  #checkov:skip=CKV_AWS_225:Caching is off on purpose, see CKV_AWS_120 on the stage: responses are live, per-request data.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = var.logging_level
    data_trace_enabled     = var.data_trace_enabled
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
    caching_enabled        = false
    cache_data_encrypted   = true
  }
}

# One permission per function: API Gateway may invoke only the live alias, and
# only from this API's stage.
resource "aws_lambda_permission" "this" {
  for_each = var.functions

  statement_id  = "AllowInvokeFrom-${var.name}-${var.stage_name}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  qualifier     = "live"
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/*/*"
}
