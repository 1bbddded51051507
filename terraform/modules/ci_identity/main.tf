data "aws_partition" "current" {}

# GitHub Actions OpenID Connect: a provider (one per account, or reused) and two roles
# trusted by exactly one repository. The grants themselves are data in grants.tf.
# The two CI roles stay on the default path "/", outside the env's role path: the
# apply role's role grants (var.role_path) never reach them, and NoSelfChange denies
# it any change to them as well. They carry no permissions boundary (the boundary
# forbids every iam: action the apply role needs); a person applies them.

locals {
  issuer            = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.oidc_provider_arn != "" ? var.oidc_provider_arn : aws_iam_openid_connect_provider.this[0].arn

  # sub claims are exact (StringEquals): no wildcard can widen them to another repository,
  # branch or fork.
  subjects = {
    apply = [for s in var.apply_subjects : "repo:${var.repository}:${s}"]
    plan  = [for s in var.plan_subjects : "repo:${var.repository}:${s}"]
  }

  trust = {
    for role, subjects in local.subjects : role => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid       = "GitHubActionsOidc"
        Effect    = "Allow"
        Principal = { Federated = local.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${local.issuer}:aud" = "sts.amazonaws.com"
            "${local.issuer}:sub" = subjects
          }
        }
      }]
    })
  }
}

resource "aws_iam_openid_connect_provider" "this" {
  count = var.oidc_provider_arn == "" ? 1 : 0

  # No thumbprint_list: IAM validates GitHub's certificate against its own trusted CAs.
  url            = "https://${local.issuer}"
  client_id_list = ["sts.amazonaws.com"]
  tags           = var.tags
}

resource "aws_iam_role" "plan" {
  name                 = "${var.name}-github-plan"
  description          = "deployctl plan from GitHub Actions (${var.repository}): read-only on the stack, state read and lock"
  assume_role_policy   = local.trust.plan
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "plan" {
  name   = "${var.name}-github-plan"
  role   = aws_iam_role.plan.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.plan_statements })
}

resource "aws_iam_role" "apply" {
  name                 = "${var.name}-github-apply"
  description          = "deployctl apply from GitHub Actions (${var.repository}): what the stack needs, roles on ${var.role_path} with the env boundary"
  assume_role_policy   = local.trust.apply
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "apply" {
  name   = "${var.name}-github-apply"
  role   = aws_iam_role.apply.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.apply_statements })
}
