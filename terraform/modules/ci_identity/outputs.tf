output "apply_role_arn" {
  description = "ARN of the apply role: the workflow's APPLY_ROLE_ARN."
  value       = aws_iam_role.apply.arn
}

output "apply_role_name" {
  description = "Name of the apply role."
  value       = aws_iam_role.apply.name
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider (created or reused)."
  value       = local.oidc_provider_arn
}

output "plan_role_arn" {
  description = "ARN of the read-only plan role: the workflow's PLAN_ROLE_ARN."
  value       = aws_iam_role.plan.arn
}

output "plan_role_name" {
  description = "Name of the plan role."
  value       = aws_iam_role.plan.name
}
