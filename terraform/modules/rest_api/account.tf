# The account-level (per region) CloudWatch role API Gateway logs with. There
# is one per account and region: set manage_account_settings = false if another
# stack in the same account and region owns it.

locals {
  log_group_arn_prefix = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group"
}

# No aws:SourceAccount / aws:SourceArn condition: API Gateway's documented trust
# policy has none and API Gateway is known not to send aws:SourceAccount when it
# assumes a role (integration credentials), so such a condition risks
# UpdateAccount failing ("The role ARN does not have required permissions ...")
# and logging stopping. The role can only write API Gateway log groups anyway.
data "aws_iam_policy_document" "apigateway_assume" {
  statement {
    sid     = "ApiGatewayAssumesTheRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

# Instead of the AmazonAPIGatewayPushToCloudWatchLogs managed policy (Resource
# "*"): only API Gateway's own log groups in this account and region.
data "aws_iam_policy_document" "apigateway_logs" {
  statement {
    sid = "WriteApiGatewayLogGroups"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:GetLogEvents",
      "logs:FilterLogEvents",
      "logs:PutLogEvents",
    ]
    resources = [
      "${local.log_group_arn_prefix}:API-Gateway-Execution-Logs_*",
      "${local.log_group_arn_prefix}:/aws/apigateway/*",
    ]
  }

  # DescribeLogGroups is a list call: IAM evaluates it against every log group
  # of the account and region (log-group:*), never against a name prefix, so
  # the prefixes above would deny it. It reads metadata only.
  statement {
    sid       = "ListLogGroupsOfThisAccountAndRegion"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["${local.log_group_arn_prefix}:*"]
  }
}

resource "aws_iam_role" "cloudwatch" {
  count = var.manage_account_settings ? 1 : 0

  name                 = "${var.name}-apigateway-cloudwatch"
  path                 = var.role_path
  description          = "API Gateway account CloudWatch Logs role (${var.region})"
  assume_role_policy   = data.aws_iam_policy_document.apigateway_assume.json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "cloudwatch" {
  count = var.manage_account_settings ? 1 : 0

  name   = "${var.name}-apigateway-logs"
  role   = aws_iam_role.cloudwatch[0].id
  policy = data.aws_iam_policy_document.apigateway_logs.json
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_account_settings ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.cloudwatch[0].arn

  depends_on = [aws_iam_role_policy.cloudwatch]
}
