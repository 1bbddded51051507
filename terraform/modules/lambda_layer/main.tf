# One published version of a Lambda layer, from the zip `deployctl publish-lambda`
# uploaded to the artifact bucket (layers/<layer>/<sha256>.zip, pinned by S3
# version id). source_code_hash is the zip's SHA-256 from the artifact
# manifest: a new layer version appears only when the content changes.

resource "aws_lambda_layer_version" "this" {
  layer_name               = var.layer_name
  description              = var.description
  s3_bucket                = var.s3_bucket
  s3_key                   = var.s3_key
  s3_object_version        = var.s3_object_version
  source_code_hash         = var.source_code_hash
  compatible_runtimes      = var.compatible_runtimes
  compatible_architectures = var.compatible_architectures

  # A function version already using a deleted layer version keeps running it
  # (rollback via the aliases still works); skip_destroy keeps old versions anyway.
  skip_destroy = var.skip_destroy
}
