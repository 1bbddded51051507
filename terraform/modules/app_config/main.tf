data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  prefix = "/${var.environment}/${var.app}/"

  # SSM parameter ARNs are "arn:...:parameter" followed by the name without its
  # leading slash.
  arn_prefix = "arn:${data.aws_partition.current.partition}:ssm:${var.region}:${data.aws_caller_identity.current.account_id}:parameter${trimsuffix(local.prefix, "/")}"

  plain  = { for name, p in var.parameters : name => p if !p.secure }
  secure = { for name, p in var.parameters : name => p if p.secure }
}

# Plain configuration (names, sizes, levels): readable in the console and in
# plans on purpose; nothing sensitive may be a plain parameter.
resource "aws_ssm_parameter" "plain" {
  #checkov:skip=CKV2_AWS_34:Plain String by design for non-sensitive settings (log level, page size); anything sensitive is declared secure = true and becomes a SecureString with the CMK (aws_ssm_parameter.secure).
  for_each = local.plain

  name        = "${local.prefix}${each.key}"
  description = each.value.description
  type        = "String"
  value       = each.value.value
  tags        = var.tags
}

# Sensitive values: created with a placeholder, the real value is set out of
# band (aws ssm put-parameter --overwrite) and never passes through Terraform.
resource "aws_ssm_parameter" "secure" {
  for_each = local.secure

  name        = "${local.prefix}${each.key}"
  description = each.value.description
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.secure_placeholder
  tags        = var.tags

  lifecycle {
    ignore_changes = [value]
  }
}
