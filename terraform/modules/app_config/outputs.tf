output "arn_prefix" {
  description = "ARN of the parameter path (no trailing slash); IAM resources are this and this/*."
  value       = local.arn_prefix
}

output "arns" {
  description = "ARNs of every declared parameter (plain and secure) keyed by parameter key."
  value       = { for name in keys(local.names) : name => "${local.arn_prefix}/${name}" }
}

output "iam_resources" {
  description = "Resources an IAM statement reading the parameters needs (the path and everything under it)."
  value       = [local.arn_prefix, "${local.arn_prefix}/*"]
}

output "names" {
  description = "Full parameter names (plain and secure) keyed by parameter key."
  value       = local.names
}

output "prefix" {
  description = "The parameter prefix, /<env>/<app>/ (what functions get as PARAMETER_PREFIX)."
  value       = local.prefix
}

output "secure_names" {
  description = "Full names of the SecureString parameters, keyed by parameter key (created by deployctl, not by this module)."
  value       = { for name in local.secure : name => local.names[name] }
}
