output "api_endpoint" {
  description = "Base URL of the API stage."
  value       = module.api.invoke_url
}

output "api_id" {
  description = "Id of the REST API."
  value       = module.api.id
}

output "artifact_bucket" {
  description = "Name of the artifact bucket (deployctl publish-lambda uploads here)."
  value       = module.artifact_bucket.name
}

output "ci_apply_role_arn" {
  description = "ARN of the GitHub Actions apply role (the workflow's APPLY_ROLE_ARN); \"\" without [ci] github_repository."
  value       = length(module.ci_identity) > 0 ? module.ci_identity[0].apply_role_arn : ""
}

output "ci_oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider; \"\" without [ci] github_repository."
  value       = length(module.ci_identity) > 0 ? module.ci_identity[0].oidc_provider_arn : ""
}

output "ci_plan_role_arn" {
  description = "ARN of the GitHub Actions read-only plan role (the workflow's PLAN_ROLE_ARN); \"\" without [ci] github_repository."
  value       = length(module.ci_identity) > 0 ? module.ci_identity[0].plan_role_arn : ""
}

output "dashboard_url" {
  description = "Console URL of the CloudWatch dashboard."
  value       = module.monitoring.dashboard_url
}

output "function_arns" {
  description = "Unqualified function ARNs keyed by function key."
  value       = { for name, fn in module.functions : name => fn.arn }
}

output "function_names" {
  description = "Physical function names keyed by function key."
  value       = { for name, fn in module.functions : name => fn.function_name }
}

output "health_url" {
  description = "URL of GET /health."
  value       = "${module.api.invoke_url}/health"
}

output "kms_key_arn" {
  description = "ARN of the environment's customer-managed key."
  value       = module.kms.key_arn
}

output "kms_key_id" {
  description = "Id of the environment's customer-managed key."
  value       = module.kms.key_id
}

output "live_alias_arns" {
  description = "ARNs of each function's live alias, keyed by function key."
  value       = { for name, fn in module.functions : name => fn.live_alias_arn }
}

output "parameter_prefix" {
  description = "SSM prefix of the environment's parameters."
  value       = module.app_config.prefix
}

output "sns_topic_arn" {
  description = "ARN of the alarm topic."
  value       = module.monitoring.sns_topic_arn
}

output "table_arns" {
  description = "Table ARNs keyed by table key."
  value       = { for name, table in module.tables : name => table.arn }
}

output "table_names" {
  description = "Physical table names keyed by table key."
  value       = { for name, table in module.tables : name => table.name }
}
