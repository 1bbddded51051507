"""The end-to-end suite (a package, so its conftest does not shadow tests/conftest.py)."""
