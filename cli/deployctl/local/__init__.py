"""Local: the API served on localhost against an embedded emulator."""
