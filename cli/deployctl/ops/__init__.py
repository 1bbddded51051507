"""Day-two operations on a deployed env: invoke, logs, status, drift, prune (and the rollout extension point)."""
