output "arn" {
  description = "ARN of the artifact bucket."
  value       = aws_s3_bucket.this.arn
}

output "log_bucket_arn" {
  description = "ARN of the server access log bucket."
  value       = aws_s3_bucket.logs.arn
}

output "log_bucket_name" {
  description = "Name of the server access log bucket."
  value       = aws_s3_bucket.logs.id
}

output "name" {
  description = "Name of the artifact bucket."
  value       = aws_s3_bucket.this.id
}
