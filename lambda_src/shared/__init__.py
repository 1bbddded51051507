"""Code shared by every handler: config, HTTP responses, validation, logging, AWS clients."""
