"""Artifacts: reproducible Lambda zips, content-addressed uploads, the manifest, alias moves."""
