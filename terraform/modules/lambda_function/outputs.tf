output "alias_arns" {
  description = "ARNs of the live and staging aliases, keyed by alias name."
  value       = { for name, alias in aws_lambda_alias.this : name => alias.arn }
}

output "arn" {
  description = "Unqualified ARN of the function."
  value       = aws_lambda_function.this.arn
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "function_name" {
  description = "Name of the function."
  value       = aws_lambda_function.this.function_name
}

output "live_alias_arn" {
  description = "ARN of the live alias (what the API invokes)."
  value       = aws_lambda_alias.this["live"].arn
}

output "live_alias_invoke_arn" {
  description = "Invoke ARN of the live alias, for API Gateway integrations."
  value       = aws_lambda_alias.this["live"].invoke_arn
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "role_arn" {
  description = "ARN of the execution role."
  value       = aws_iam_role.this.arn
}

output "version" {
  description = "Latest published version (the aliases may point elsewhere after promote/rollback)."
  value       = aws_lambda_function.this.version
}
