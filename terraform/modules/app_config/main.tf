data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  prefix = "/${var.environment}/${var.app}/"

  # SSM parameter ARNs are "arn:...:parameter" followed by the name without its
  # leading slash.
  arn_prefix = "arn:${data.aws_partition.current.partition}:ssm:${var.region}:${data.aws_caller_identity.current.account_id}:parameter${trimsuffix(local.prefix, "/")}"

  plain = { for name, p in var.parameters : name => p if !p.secure }

  # SecureStrings are created (with a generated value, under the env's CMK) and
  # rotated by deployctl (`deployctl secret ensure|rotate`), never by Terraform:
  # a managed aws_ssm_parameter, even with ignore_changes = [value], reads the
  # decrypted value into the state and the plan JSON on every refresh, and a
  # data source would do the same. Terraform knows only their names (for IAM).
  secure = sort([for name, p in var.parameters : name if p.secure])

  names = merge(
    { for name in keys(local.plain) : name => "${local.prefix}${name}" },
    { for name in local.secure : name => "${local.prefix}${name}" },
  )
}

# Plain configuration (names, sizes, levels): readable in the console and in
# plans on purpose; nothing sensitive may be a plain parameter.
resource "aws_ssm_parameter" "this" {
  #checkov:skip=CKV2_AWS_34:Plain String by design for non-sensitive settings (log level, page size); anything sensitive is declared secure = true and becomes a SecureString under the CMK that deployctl creates outside Terraform (deployctl secret ensure).
  for_each = local.plain

  name        = "${local.prefix}${each.key}"
  description = each.value.description
  type        = "String"
  value       = each.value.value
  tags        = var.tags
}

moved {
  from = aws_ssm_parameter.plain
  to   = aws_ssm_parameter.this
}

# Earlier versions managed the SecureStrings here (placeholder value plus
# ignore_changes). Forget them without deleting them: the parameters stay in
# SSM (deployctl secret ensure replaces a placeholder) and their values leave
# the state.
removed {
  from = aws_ssm_parameter.secure

  lifecycle {
    destroy = false
  }
}
