output "arn" {
  description = "ARN of the layer version (versioned: what functions attach)."
  value       = aws_lambda_layer_version.this.arn
}

output "code_sha256" {
  description = "Base64 SHA-256 of the layer content as Lambda reports it."
  value       = aws_lambda_layer_version.this.code_sha256
}

output "layer_arn" {
  description = "ARN of the layer (unversioned)."
  value       = aws_lambda_layer_version.this.layer_arn
}

output "layer_name" {
  description = "Name of the layer."
  value       = aws_lambda_layer_version.this.layer_name
}

output "version" {
  description = "Version number of the layer version."
  value       = aws_lambda_layer_version.this.version
}
