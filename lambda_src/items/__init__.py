"""Items API: POST /items and GET /items."""
