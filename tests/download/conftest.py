"""Fixtures of the downloader tests: a served public app over the test catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.download.site import Site, running_site


@pytest.fixture
def site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    """The public app over the catalogue of tests.fixtures.public_data."""
    with running_site(tmp_path, sqlite_template) as served:
        yield served
