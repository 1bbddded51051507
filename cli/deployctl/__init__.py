"""deployctl: ship an API Gateway + Lambda + DynamoDB backend safely."""

__version__ = "0.1.0"
