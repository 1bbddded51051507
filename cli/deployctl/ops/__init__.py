"""Day-two operations on a deployed env: invoking its functions."""
