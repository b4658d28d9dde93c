"""Fixtures for the submitter: one synthetic sample per session, kits and ID maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhub.sample import SampleManifest, make_sample
from tests.submit.helpers import write_idmap, write_test_kit
from tests.submit.intake_server import intake  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    out = tmp_path_factory.mktemp("submit-sample") / "sample"
    return out, make_sample(out, patients=2, seed=3, small=True)


@pytest.fixture
def kit_path(tmp_path: Path) -> Path:
    return write_test_kit(tmp_path / "kit.json")


@pytest.fixture
def idmap_path(tmp_path: Path, sample: tuple[Path, SampleManifest]) -> Path:
    return write_idmap(tmp_path / "map.csv", sample[1])
