"""Health check: GET /health and GET /."""
