"""Infra: tfvars rendering, policy gates, terraform plan/apply bundles, bootstrap, doctor."""
