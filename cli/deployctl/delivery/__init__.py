"""Progressive delivery: rollouts that shift ``live`` in steps, watch, and roll back (docs/rollouts.md)."""
