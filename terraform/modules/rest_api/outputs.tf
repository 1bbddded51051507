output "access_log_group_name" {
  description = "Log group of the stage's JSON access logs."
  value       = aws_cloudwatch_log_group.access.name
}

output "body_sha256" {
  description = "sha256 of the rendered OpenAPI body (the redeployment trigger)."
  value       = local.body_sha256
}

output "execution_arn" {
  description = "Execution ARN of the API (for permissions)."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "id" {
  description = "Id of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "invoke_url" {
  description = "Base URL of the stage, without a trailing slash."
  value       = trimsuffix(aws_api_gateway_stage.this.invoke_url, "/")
}

output "name" {
  description = "Name of the REST API (the ApiName metric dimension)."
  value       = aws_api_gateway_rest_api.this.name
}

output "operations" {
  description = "Every operation as \"<METHOD> <path>\" => function key."
  value       = local.operations
}

output "stage_name" {
  description = "Name of the stage (the Stage metric dimension)."
  value       = aws_api_gateway_stage.this.stage_name
}
