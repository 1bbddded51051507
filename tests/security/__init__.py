"""The attack suite (issue 15): each test runs an attack against the real component and
asserts that it now fails safely."""
