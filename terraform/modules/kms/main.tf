data "aws_partition" "current" {}

locals {
  account_arn = "arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"

  # Key policy. Resource "*" inside a key policy means "this key" (a key policy
  # cannot name any other resource), so it is not a wildcard grant.
  key_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        # The account root: without it the key becomes unmanageable (AWS default
        # key policy). It only delegates to IAM; it grants no principal anything.
        Sid       = "AccountRootAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = local.account_arn }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # CloudWatch Logs may use the key only for log groups of this account
        # and region (encryption context names the log group ARN).
        Sid       = "CloudWatchLogsInThisAccountAndRegion"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = local.data_key_actions
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${var.account_id}:log-group:*"
          }
        }
      },
      {
        # SNS (alarm topic), SQS (dead-letter queues), DynamoDB (tables) and
        # CloudWatch (alarms publishing to the encrypted topic), on behalf of
        # this account only.
        Sid       = "AwsServicesOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = sort(var.service_principals) }
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = var.account_id }
        }
      },
    ]
  }

  data_key_actions = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
  ]
}

resource "aws_kms_key" "this" {
  description             = var.description
  deletion_window_in_days = var.deletion_window_in_days
  enable_key_rotation     = true
  rotation_period_in_days = var.rotation_period_in_days
  policy                  = jsonencode(local.key_policy)
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias_name}"
  target_key_id = aws_kms_key.this.key_id
}
