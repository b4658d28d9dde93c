"""Shared fixtures: each family lives in its own module under tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.db",
]
