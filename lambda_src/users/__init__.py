"""Users API: /users and /users/{userId} in one handler."""
