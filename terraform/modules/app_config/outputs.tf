output "arn_prefix" {
  description = "ARN of the parameter path (no trailing slash); IAM resources are this and this/*."
  value       = local.arn_prefix
}

output "iam_resources" {
  description = "Resources an IAM statement reading the parameters needs (the path and everything under it)."
  value       = [local.arn_prefix, "${local.arn_prefix}/*"]
}

output "names" {
  description = "Full parameter names keyed by parameter key."
  value       = merge({ for k, p in aws_ssm_parameter.plain : k => p.name }, { for k, p in aws_ssm_parameter.secure : k => p.name })
}

output "prefix" {
  description = "The parameter prefix, /<env>/<app>/ (what functions get as PARAMETER_PREFIX)."
  value       = local.prefix
}
