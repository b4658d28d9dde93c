"""One small sample per test session; generating it is the slow part."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from dicomhub.sample import SampleManifest, make_sample


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    out = tmp_path_factory.mktemp("sample") / "out"
    return out, make_sample(out, patients=2, seed=0, small=True)


@pytest.fixture(scope="session")
def datasets(sample: tuple[Path, SampleManifest]) -> dict[str, Dataset]:
    """Every file of the sample read back, by manifest path."""
    out, manifest = sample
    return {entry.path: dcmread(out / entry.path) for entry in manifest.files}
