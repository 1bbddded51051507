output "arn" {
  description = "ARN of the boundary policy: the permissions_boundary of every role the stack creates, and the only boundary the CI apply role may set."
  value       = aws_iam_policy.this.arn
}

output "name" {
  description = "Name of the boundary policy (<name>-boundary)."
  value       = aws_iam_policy.this.name
}

output "path" {
  description = "IAM path of the boundary policy and of every role of the env."
  value       = aws_iam_policy.this.path
}
