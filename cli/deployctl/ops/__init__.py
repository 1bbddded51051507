"""Day-two operations on a deployed env: logs, status, prune (and the rollout extension point)."""
