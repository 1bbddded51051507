output "arn" {
  description = "ARN of the table."
  value       = local.table.arn
}

output "iam_resources" {
  description = "ARNs an IAM statement on this table needs: the table and all its indexes."
  value       = [local.table.arn, "${local.table.arn}/index/*"]
}

output "index_names" {
  description = "Names of the global secondary indexes."
  value       = sort(keys(var.global_secondary_indexes))
}

output "name" {
  description = "Name of the table."
  value       = local.table.name
}

output "stream_arn" {
  description = "ARN of the table's stream (null without a stream)."
  value       = var.stream_enabled ? local.table.stream_arn : null
}
