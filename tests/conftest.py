"""Shared fixtures: each family lives in its own module under tests/fixtures."""

import os

# Rich wraps at 80 columns when there is no terminal; CLI tests read whole lines.
os.environ["COLUMNS"] = "200"

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.db",
]
